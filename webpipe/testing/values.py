"""Test values: `let` literals, `{{name}}` rendering and jq evaluation with variables.

Two mechanisms, applied to different places (spec/testing.md §3): Handlebars-style
rendering (`{{name}}`, HTML-escaped; `{{{name}}}` raw) for paths, assertion values and
selectors; jq with the variables as input *and* `$name` bindings for request data, mocks
and call assertions.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from webpipe.limits import Limits
from webpipe.sandbox.blocking import tooling_worker
from webpipe.sandbox.pool import SandboxError, SandboxMemory, SandboxTimeout
from webpipe.syntax import nodes as n
from webpipe.templating import Environment, Template, TemplateError

_JQ_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class TestValueError(Exception):
    """A test input could not be evaluated (the test errors)."""


def parse_json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def let_value(value: n.Value) -> Any:
    """A `let` value: the raw text parsed as JSON, else kept as a string (§2.3)."""
    return parse_json_or_text(value.text)


def render(template: str, variables: dict[str, Any]) -> str:
    """Handlebars rendering with the same engine as the `handlebars` middleware:
    `{{name}}` HTML-escaped, `{{{name}}}` raw, unknown names empty (spec/testing.md §3.1)."""
    try:
        return _compile(template).render(variables)
    except TemplateError as exc:
        raise TestValueError(f"Template substitution failed: {exc}") from None


@lru_cache(maxsize=1024)
def _compile(template: str) -> Template:
    return _ENGINE.compile(template)


_ENGINE = Environment()


def eval_jq(program: str, variables: dict[str, Any], role: str) -> Any:
    """Evaluate a test's jq text with the variables as input and `$name` bindings."""
    bindings = {k: v for k, v in variables.items() if _JQ_NAME.match(k)}
    limits = Limits()
    try:  # bounded: libjq in the tooling worker (spec/sandbox.md)
        return tooling_worker().run(
            "jq", {"program": program, "input": variables, "args": bindings},
            timeout_s=limits.jq_timeout_ms / 1000, memory_mb=limits.jq_memory_mb)
    except SandboxTimeout:
        detail = f"exceeded its {limits.jq_timeout_ms} ms time budget"
    except SandboxMemory:
        detail = f"exceeded its {limits.jq_memory_mb} MB memory budget"
    except SandboxError as exc:
        text = exc.message.strip()
        detail = text.splitlines()[0] if text else "error"
    raise TestValueError(f"JQ error in test {role} `{program}`: {detail}")


def expected_value(value: n.Value | None, variables: dict[str, Any]) -> Any:
    """An assertion's expected value: rendered, trimmed, parsed as JSON, else a string."""
    if value is None:
        return None
    text = f'"{value.text}"' if value.kind == "quoted" else value.text
    rendered = render(text, variables).strip()
    return parse_json_or_text(rendered)


def raw_text(value: n.Value | None, variables: dict[str, Any]) -> str:
    """A value taken raw (selector text/attribute values): rendered, no JSON parsing."""
    return "" if value is None else render(value.text, variables)
