"""`webpipe lsp` as a CLI command: present with pygls, a clear message without it."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCK_PYGLS = ("import sys; sys.modules['lsprotocol'] = sys.modules['pygls'] = None; "
               "sys.argv = ['webpipe', 'lsp']; from webpipe.cli import main; main()")


def test_without_pygls_the_command_names_the_extra() -> None:
    done = subprocess.run([sys.executable, "-c", BLOCK_PYGLS], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    assert "pip install 'webpipe[lsp]'" in done.stderr


def test_the_command_is_registered() -> None:
    pytest.importorskip("pygls", reason="the language server needs pygls (webpipe[lsp])")
    from click.testing import CliRunner

    from webpipe.cli import cli

    result = CliRunner().invoke(cli, ["lsp", "--help"])
    assert result.exit_code == 0
    assert "language server" in result.output
