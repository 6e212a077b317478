"""Public entry points: load a program (parse, imports, plan every step) into an `Env`."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from webpipe.executor.env import Env, build_env
from webpipe.loader import load_file, load_source
from webpipe.middleware import Registry
from webpipe.source import Source


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC while a program loads: parsing allocates many long-lived objects and
    the collector's passes over them cost about a fifth of the load time. Garbage made
    meanwhile is collected by the first pass after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_program(path: str | Path, *, registry: Registry | None = None,
                 environ: Mapping[str, str] | None = None) -> Env:
    """Load `path` and its imports and prepare every step (raises `WebpipeError`)."""
    with gc_paused():
        return build_env(load_file(path), registry, environ)


def program_from_text(text: str, *, name: str = "app.wp", base_dir: Path | None = None,
                      registry: Registry | None = None,
                      environ: Mapping[str, str] | None = None) -> Env:
    """Load a program from text; imports resolve relative to `base_dir` (default cwd)."""
    path = (base_dir or Path.cwd()) / name
    with gc_paused():
        return build_env(load_source(Source.from_text(name, text), path), registry, environ)
