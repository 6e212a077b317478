"""Template errors: one for compiling, one for rendering, both with positions.

Messages follow handlebars-rust's wording (`Partial not found x`, `helper "if" was opened,
but "each" is closing`) so the `handlebarsError` envelopes read like the reference's. Render
errors are located by the innermost element that failed and named by the innermost named
template (a partial's name, or the step template's `tpl_…` name), as in `render.rs`.
"""

from __future__ import annotations


class TemplateError(Exception):
    """Base of the template engine's errors."""


class TemplateSyntaxError(TemplateError):
    """The template text cannot be compiled; `pos` is a character offset into it."""

    def __init__(self, reason: str, pos: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.pos = pos
        self.line: int | None = None
        self.column: int | None = None
        self.template: str | None = None

    def locate(self, source: str, template: str | None) -> TemplateSyntaxError:
        """Turn `pos` into a 1-based line and column of `source`."""
        pos = max(0, min(self.pos, len(source)))
        self.line = source.count("\n", 0, pos) + 1
        self.column = pos - (source.rfind("\n", 0, pos) + 1) + 1
        self.template = template
        return self

    def __str__(self) -> str:
        where = f" (line {self.line}, col {self.column})" if self.line is not None else ""
        return f"{self.reason}{where}"


class TemplateRenderError(TemplateError):
    """Rendering failed (missing partial, unknown helper, bad parameter, …)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line: int | None = None
        self.column: int | None = None
        self.template: str | None = None

    def locate(self, line: int, column: int) -> None:
        """Record the failing element's position; the innermost one wins."""
        if self.line is None:
            self.line, self.column = line, column

    def name(self, template: str | None) -> None:
        """Record the template name; the innermost named template wins."""
        if self.template is None:
            self.template = template

    def __str__(self) -> str:
        if self.line is None:
            return self.reason
        name = self.template or "Unnamed template"
        return f'Error rendering "{name}" line {self.line}, col {self.column}: {self.reason}'
