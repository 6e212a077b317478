"""Differential rendering: generated code against the compiler's closures, byte for byte.

`Environment(generate=False)` renders every template through the closures `Compiler.node`
builds (the general path the generated code falls back to). `outcome()` renders one
template both ways and returns what they agree on, or fails the test with both results;
the `closures_agree` fixture does that for every `Template.render` a test makes, so each
existing templating and handlebars test is also a differential test.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from webpipe.templating import Environment, Template, TemplateError

JSON = Any
Outcome = tuple[str, str]  # ("ok", text) or (error class, message with its position)


def render_outcome(template: Template, data: JSON) -> Outcome:
    try:
        return "ok", _RENDER(template, data)
    except TemplateError as exc:
        return type(exc).__name__, str(exc)


def reference(template: Template) -> Template:
    """The same template and partials compiled to closures only (cached per test session)."""
    key = (tuple(sorted(template.env.sources.items())), template.source, template.name)
    if key not in _REFERENCES:
        env = Environment(template.env.sources, generate=False)
        _REFERENCES[key] = env.compile(template.source, template.name)
    return _REFERENCES[key]


def outcome(source: str, data: JSON, partials: dict[str, str] | None = None) -> Outcome:
    """Render `source` both ways; fail unless text (or error and message) are identical."""
    env = Environment(partials)
    try:
        template = env.compile(source)
    except TemplateError as exc:
        return type(exc).__name__, str(exc)
    generated = render_outcome(template, data)
    closures = render_outcome(reference(template), data)
    assert generated == closures, (source, partials, data)
    return generated


_RENDER = Template.render
_REFERENCES: dict[tuple[object, str, str], Template] = {}


@contextmanager
def _quiet() -> Iterator[None]:
    """The `log` helper's records come from the render under test only."""
    logger = logging.getLogger("webpipe.handlebars")
    saved, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = saved


@pytest.fixture
def closures_agree(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every `Template.render` in the test also renders through the closures and must agree."""

    def render(self: Template, data: JSON) -> str:
        error: TemplateError | None = None
        try:
            generated = "ok", _RENDER(self, data)
        except TemplateError as exc:
            generated, error = (type(exc).__name__, str(exc)), exc
        if self.env.generate:
            with _quiet():
                closures = render_outcome(reference(self), data)
            assert generated == closures, (self.source, self.env.sources, data)
        if error is not None:
            raise error
        return generated[1]

    monkeypatch.setattr(Template, "render", render)
    yield
