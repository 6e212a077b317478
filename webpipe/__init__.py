"""webpipe: a Python implementation of the Web Pipe language."""

from __future__ import annotations

__version__ = "0.1.0"
