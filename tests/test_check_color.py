"""`webpipe check` colours its diagnostics on a terminal only, and never with NO_COLOR."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from webpipe.errors import Diagnostic, wants_color
from webpipe.source import Source

APP = "GET /a\n  |> jqq: `.`\n"
RED = "\x1b[1;31m"


def _check(app: Path, env: dict[str, str], *, tty: bool) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    command = [sys.executable, "-m", "webpipe", "check", str(app)]
    if not tty:
        return subprocess.run(command, capture_output=True, text=True, timeout=60,
                              env={**environ, **env}, check=False).stderr
    leader, follower = pty.openpty()
    try:
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=follower, timeout=60,
                       env={**environ, **env}, check=False)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal's other end is closed: everything was read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    return b"".join(chunks).decode()


def test_a_terminal_gets_colour(tmp_path: Path) -> None:
    app = tmp_path / "app.wp"
    app.write_text(APP)
    out = _check(app, {}, tty=True)
    assert f"{RED}error:" in out and "unknown middleware 'jqq'" in out


def test_no_color_turns_it_off_on_a_terminal(tmp_path: Path) -> None:
    app = tmp_path / "app.wp"
    app.write_text(APP)
    out = _check(app, {"NO_COLOR": "1"}, tty=True)
    assert "\x1b[" not in out and "app.wp:2:3: error: unknown middleware 'jqq'" in out


def test_a_pipe_gets_plain_text(tmp_path: Path) -> None:
    app = tmp_path / "app.wp"
    app.write_text(APP)
    out = _check(app, {}, tty=False)
    assert "\x1b[" not in out and "app.wp:2:3: error: unknown middleware 'jqq'" in out


def test_force_color_colours_a_pipe(tmp_path: Path) -> None:
    app = tmp_path / "app.wp"
    app.write_text(APP)
    assert f"{RED}error:" in _check(app, {"FORCE_COLOR": "1"}, tty=False)


def test_coloured_and_plain_renderings_say_the_same() -> None:
    source = Source("app.wp", APP)
    found = Diagnostic("unknown middleware 'jqq'", source.span(9, 19), "warning",
                       notes=("a note",))
    coloured = found.render(color=True)
    assert "\x1b[1;33mwarning:" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == found.render()


def test_wants_color_reads_the_environment() -> None:
    class Tty:
        def isatty(self) -> bool:
            return True

    assert wants_color(Tty(), {})  # type: ignore[arg-type]
    assert not wants_color(Tty(), {"NO_COLOR": "1"})  # type: ignore[arg-type]
    assert not wants_color(io.StringIO(), {})  # not a terminal
    assert wants_color(io.StringIO(), {"FORCE_COLOR": "1"})
