"""`webpipe fmt` over files and stdin, shaped like `ruff format`.

Files are rewritten in place; `--check` writes nothing and lists the files that would
change; `--diff` writes nothing and prints a unified diff on stdout; `-` reads one program
from stdin and writes the formatted text (or, with `--check`/`--diff`, only the verdict) to
stdout, for editors and pre-commit. Exit codes as Ruff's: 0 done (or nothing to change),
1 something would change (`--check`/`--diff`), 2 a file could not be formatted (its error
is printed and the other files are still formatted).
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import click

from webpipe.errors import LoadError, WebpipeError
from webpipe.loader import read_file
from webpipe.source import Source
from webpipe.syntax.fmt import format_source

Mode = Literal["write", "check", "diff"]
EXIT_CHANGES = 1
EXIT_ERROR = 2


@dataclass(slots=True)
class Tally:
    changed: int = 0
    unchanged: int = 0
    failed: int = 0


def unified_diff(name: str, before: str, after: str) -> str:
    """A unified diff from `before` to `after`, both sides labelled `name` (as Ruff does)."""
    lines = difflib.unified_diff(before.splitlines(keepends=True),
                                 after.splitlines(keepends=True), name, name)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)


def format_paths(files: list[Path], mode: Mode) -> int:
    """Format `files` in `mode`, report each file that changes (or would) and a summary
    on stderr; the exit code."""
    tally = Tally()
    for file in files:
        try:
            before = read_file(file)
            after = format_source(Source.from_text(str(file), before))
            if after != before and mode == "write":
                _write(file, after)
        except WebpipeError as exc:
            click.echo(str(exc), err=True)
            tally.failed += 1
            continue
        _report(file, before, after, mode, tally)
    click.echo(_summary(tally, mode), err=True)
    if tally.failed:
        return EXIT_ERROR
    return EXIT_CHANGES if tally.changed and mode != "write" else 0


def format_stdin(name: str, mode: Mode) -> int:
    """Format the program on stdin (reported as `name`); the exit code. On an error
    nothing is written to stdout, so an editor keeps its buffer."""
    data = sys.stdin.buffer.read()
    try:
        before = data.decode("utf-8")
        after = format_source(Source.from_text(name, before))
    except UnicodeDecodeError as exc:
        click.echo(str(LoadError(f"cannot read {name}: not UTF-8 text (byte {exc.start})")),
                   err=True)
        return EXIT_ERROR
    except WebpipeError as exc:
        click.echo(str(exc), err=True)
        return EXIT_ERROR
    if mode == "write":
        sys.stdout.write(after)
        return 0
    if mode == "diff":
        sys.stdout.write(unified_diff(name, before, after))
    elif after != before:
        click.echo(f"would reformat {name}", err=True)
    return EXIT_CHANGES if after != before else 0


def _write(file: Path, text: str) -> None:
    try:
        file.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise LoadError(f"cannot write {file}: {exc.strerror or exc}") from None


def _report(file: Path, before: str, after: str, mode: Mode, tally: Tally) -> None:
    if after == before:
        tally.unchanged += 1
        return
    tally.changed += 1
    if mode == "diff":
        sys.stdout.write(unified_diff(str(file), before, after))
    else:
        verb = "would reformat" if mode == "check" else "reformatted"
        click.echo(f"{verb} {file}", err=True)


def _summary(tally: Tally, mode: Mode) -> str:
    verb = "reformatted" if mode == "write" else "would be reformatted"
    kept = "left unchanged" if mode == "write" else "already formatted"
    parts = [f"{_files(tally.changed)} {verb}", f"{_files(tally.unchanged)} {kept}"]
    if tally.failed:
        parts.append(f"{_files(tally.failed)} could not be formatted")
    return ", ".join(parts)


def _files(count: int) -> str:
    return f"{count} file{'' if count == 1 else 's'}"
