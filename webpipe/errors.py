"""Error classes and the one diagnostic renderer.

Every user-facing error carries an optional `Span`; `render_diagnostic()` prints
`app.wp:12:5: error: message`, the source line and a caret. Lark never leaks out of
`webpipe.syntax`: the parser converts its exceptions into `WpSyntaxError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Literal

from webpipe.source import Span

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a program, with where it is."""

    message: str
    span: Span | None = None
    severity: Severity = "error"
    code: str = "error"
    notes: tuple[str, ...] = field(default=())

    def render(self, color: bool = False) -> str:
        return render_diagnostic(self.message, self.span, self.severity, self.notes, color)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }
        if self.span is not None:
            out.update(
                file=self.span.source.name,
                line=self.span.line,
                column=self.span.column,
                endLine=self.span.end_line,
                endColumn=self.span.end_column,
            )
        return out


def render_diagnostic(
    message: str,
    span: Span | None,
    severity: Severity = "error",
    notes: tuple[str, ...] = (),
    color: bool = False,
) -> str:
    paint = _paint if color else _plain
    tone = _TONES[severity]
    where = paint(f"{span.label}: ", "1") if span else ""
    parts = [f"{where}{paint(severity + ':', tone)} {paint(message, '1')}"]
    if span is not None:
        line, caret = span.excerpt().split("\n")
        parts += [line, paint(caret, tone)]
    parts.extend(f"  {paint('note:', '36')} {note}" for note in notes)
    return "\n".join(parts)


_TONES = {"error": "1;31", "warning": "1;33"}  # bold red, bold yellow (as Ruff and rustc)


def _paint(text: str, sgr: str) -> str:
    return f"\x1b[{sgr}m{text}\x1b[0m" if text else text


def _plain(text: str, sgr: str) -> str:
    return text


def wants_color(stream: IO[str], environ: Mapping[str, str] = os.environ) -> bool:
    """Colour for a terminal: never with `NO_COLOR` set (no-color.org), always with
    `FORCE_COLOR` set, else when `stream` is a tty (not when piped or redirected)."""
    if environ.get("NO_COLOR"):
        return False
    if environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class WebpipeError(Exception):
    """Base of every error webpipe reports to a user."""

    code = "error"

    def __init__(self, message: str, *, span: Span | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.span = span

    def __str__(self) -> str:
        return render_diagnostic(self.message, self.span)

    def diagnostic(self) -> Diagnostic:
        return Diagnostic(self.message, self.span, "error", self.code)


class WpSyntaxError(WebpipeError):
    code = "syntax"


class LoadError(WebpipeError):
    code = "load"


class CheckError(WebpipeError):
    code = "check"


class ConfigError(WebpipeError):
    """A step's config or a config block cannot be used (raised at load time by prepare()).

    `at` is where in the config text the problem is, when the embedded language says (1-based
    line and column, and a width); the planner turns it into a span in the `.wp` file."""

    code = "config"

    def __init__(self, message: str, *, span: Span | None = None,
                 at: tuple[int, int, int] | None = None) -> None:
        super().__init__(message, span=span)
        self.at = at


class StepError(WebpipeError):
    """A middleware execution failure: becomes a branchable `<step>Error` envelope, or an
    envelope of `error_type` when given (`timeout`, `limitError`, `responseTooLarge`: a
    bound of spec/limits.md was passed, whatever the step)."""

    code = "step"

    def __init__(self, message: str, *, span: Span | None = None,
                 error_type: str | None = None) -> None:
        super().__init__(message, span=span)
        self.error_type = error_type


class HardError(WebpipeError):
    """A failure that aborts the request (HTTP 500, test 'errored'); not catchable by `result`."""

    code = "hard"

    def __init__(self, message: str, *, span: Span | None = None, status: int = 500) -> None:
        super().__init__(message, span=span)
        self.status = status
