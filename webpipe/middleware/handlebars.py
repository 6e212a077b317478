"""The `handlebars` middleware (spec/middleware.md §4): render the state into HTML.

The step config is a template. `prepare()` dedents it the way the reference does, compiles
it with `webpipe.templating` (handlebars-rust semantics; see spec/handlebars.md) and
compiles the partials it names, so syntax errors surface at load time. `run()` renders
with the state's keys plus `context` (spec §0.5) and returns the string as `text/html`.
Every `handlebars` and `mustache` variable is a partial under its name (`alias/name` for
imported ones); partial bodies are not dedented. Rendering stays on the event loop: it is
pure CPU work over small templates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from webpipe.errors import ConfigError, Diagnostic, StepError
from webpipe.middleware.base import (
    JSON,
    BaseMiddleware,
    Behavior,
    MiddlewareHost,
    RequestView,
    StepCall,
    StepResult,
)
from webpipe.source import Span
from webpipe.suggest import did_you_mean
from webpipe.templating import Environment, Template, TemplateRenderError, TemplateSyntaxError

PARTIAL_KINDS = ("mustache", "handlebars")  # a later kind wins a name clash
_PARTIAL = re.compile(r"\{\{#?>\s*([A-Za-z0-9_/.-]+)")


@dataclass(frozen=True, slots=True)
class Prepared:
    template: Template
    root_keys: frozenset[str] | None  # the state keys a render can read (None: any)

    @property
    def reads_context(self) -> bool:
        """Whether a render may read the root's `context`: build `$context` for each one."""
        return self.root_keys is None


class HandlebarsMiddleware(BaseMiddleware):
    """Compiles templates at load time and renders them per request."""

    behavior: ClassVar[Behavior] = Behavior.RENDER
    content_type: ClassVar[str] = "text/html"
    rerunnable: ClassVar[bool] = True  # rendering has no effects
    tryable: ClassVar[bool] = True
    sync: ClassVar[bool] = True

    def __init__(self, host: MiddlewareHost) -> None:
        super().__init__(host)
        self._env: Environment | None = None

    @property
    def env(self) -> Environment:
        """The template environment, built from the program's variables on first use."""
        if self._env is None:
            partials: dict[str, str] = {}
            for kind in PARTIAL_KINDS:
                partials.update(self.host.variables_of(kind))
            self._env = Environment(partials)
        return self._env

    def prepare(self, config: str, span: Span | None) -> Prepared:
        try:
            template = self.env.compile(dedent(config))
            self.env.check_partials(template)
        except TemplateSyntaxError as exc:
            if exc.template in self.env.sources:
                message = f"Handlebars template compile error in partial {exc.template!r}"
                raise ConfigError(f"{message}: {exc}", span=span) from None
            raise ConfigError(f"Handlebars template compile error: {exc.reason}", span=span,
                              at=_written_at(config, exc)) from None
        return Prepared(template, self.env.root_keys(template))

    def check(self, prepared: object, config: str, span: Span) -> list[Diagnostic]:
        """Partials the template names that no `handlebars`/`mustache` variable declares."""
        known = set(self.host.variables_of("handlebars")) | set(
            self.host.variables_of("mustache"))
        missing = {m.group(1) for m in _PARTIAL.finditer(config)} - known - {"@partial-block"}
        return [Diagnostic(f"unknown partial {name!r}{did_you_mean(name, known)}", span,
                           code="unknown-partial")
                for name in sorted(missing)]

    def input_keys(self, prepared: object) -> frozenset[str] | None:
        """The top-level state keys a render can read (None: maybe all); see server."""
        return prepared.root_keys if isinstance(prepared, Prepared) else None

    async def run(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        return self.run_sync(state, prepared, call)

    def run_sync(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        assert isinstance(prepared, Prepared), "prepare() output expected"
        # a template that cannot reach `context` renders the state itself (no copy)
        data = (render_data(state, call.ctx) if prepared.reads_context
                or not isinstance(state, dict) else state)
        try:
            html = prepared.template.render(data)
        except TemplateRenderError as exc:
            raise StepError(f"Handlebars render error: {exc}") from None
        return StepResult(value=html, content_type=self.content_type)


def render_data(state: JSON, ctx: RequestView | None) -> JSON:
    """The state's keys plus `context` (which wins); a non-object state is under `data`."""
    data: dict[str, JSON] = dict(state) if isinstance(state, dict) else {"data": state}
    if ctx is not None:
        data["context"] = ctx.context_json()
    return data


def dedent(text: str) -> str:
    """The reference's `dedent_multiline`: trim line breaks at both ends, then strip the
    smallest indentation (spaces and tabs count one each) of the non-blank lines."""
    trimmed = text.strip("\r\n")
    lines = [line.removesuffix("\r") for line in trimmed.split("\n")]
    common = min((_indent(line) for line in lines if line.strip()), default=0)
    if common == 0:
        return trimmed
    return "\n".join(line[min(common, _indent(line)) :] for line in lines)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _written_at(config: str, exc: TemplateSyntaxError) -> tuple[int, int, int] | None:
    """The error's position in the config as written (it was compiled dedented), with the
    width of the `{{…}}` tag there."""
    if exc.line is None or exc.column is None:
        return None
    lines, flat = config.split("\n"), dedent(config).split("\n")
    line = exc.line + config[:len(config) - len(config.lstrip("\r\n"))].count("\n")
    if line > len(lines) or exc.line > len(flat):
        return None
    written = lines[line - 1]
    column = exc.column + len(written) - len(flat[exc.line - 1])
    rest = written[column - 1:]
    width = rest.find("}}") + 2 if rest.startswith("{{") and "}}" in rest else 1
    return line, column, width
