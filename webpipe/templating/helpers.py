"""The built-in helpers, exactly the set handlebars-rust 6 registers (no custom ones).

`HELPERS` maps a name to a `HelperDef`. A *block* helper writes output itself (`if`,
`unless`, `each`, `with`, `raw`, `log`); a *value* helper returns a JSON value (`lookup`,
`len`), printed (escaped unless triple-stashed) in `{{…}}` position; a *bool* helper
(`eq ne gt gte lt lte and or not`) prints `true`/`false`, or in block form renders its
body or `{{else}}`. Used as a sub-expression, a block helper yields its output as a string.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from webpipe.templating.errors import TemplateRenderError
from webpipe.templating.runtime import JSON, Ctx, Render, Scope
from webpipe.templating.values import (
    compare_json,
    escape_html,
    is_truthy,
    json_eq,
    json_len,
    render_value,
)

LOG = logging.getLogger("webpipe.handlebars")
_LEVELS = {"error": logging.ERROR, "warn": logging.WARNING, "info": logging.INFO,
           "debug": logging.DEBUG, "trace": 5}


@dataclass(slots=True)
class HelperCall:
    """One helper invocation with its evaluated arguments."""

    name: str
    ctx: Ctx
    scope: Scope
    out: list[str]
    params: list[JSON] = field(default_factory=list)
    hash: dict[str, JSON] = field(default_factory=dict)
    param_paths: tuple[str | None, ...] = ()  # the path text of each param (for `log`)
    block_params: tuple[str, ...] = ()
    fn: Render | None = None
    inverse: Render | None = None
    block: bool = False
    escape: bool = True

    def param(self, index: int, label: str | None = None) -> JSON:
        if index < len(self.params):
            return self.params[index]
        if label is not None:
            reason = f"Helper/Decorator {self.name} param with name {label} required but not found"
        else:
            reason = f"Helper/Decorator {self.name} param at index {index} required but not found"
        raise TemplateRenderError(reason)

    def render(self, body: Render | None, scope: Scope | None = None) -> None:
        if body is not None:
            body(self.ctx, self.scope if scope is None else scope, self.out)


@dataclass(frozen=True, slots=True)
class HelperDef:
    fn: Callable[[HelperCall], JSON]
    kind: Literal["block", "value", "bool"]


def invoke(helper: HelperDef, h: HelperCall) -> None:
    """Run a helper in `{{name …}}` or `{{#name …}}` position, writing to `h.out`."""
    if helper.kind == "block":
        helper.fn(h)
        return
    value = helper.fn(h)
    if helper.kind == "bool" and h.block:
        h.render(h.fn if value is True else h.inverse)
        return
    text = render_value(value)
    h.out.append(escape_html(text) if h.escape else text)


def evaluate(helper: HelperDef, h: HelperCall) -> JSON:
    """Run a helper as a sub-expression: its value, or a block helper's output text."""
    if helper.kind != "block":
        return helper.fn(h)
    h.out = []
    helper.fn(h)
    return "".join(h.out)


def _if(h: HelperCall) -> JSON:
    include_zero = h.hash.get("includeZero") is True
    truthy = is_truthy(h.param(0), include_zero)
    h.render(h.fn if truthy else h.inverse)
    return None


def _unless(h: HelperCall) -> JSON:
    include_zero = h.hash.get("includeZero") is True
    truthy = is_truthy(h.param(0), include_zero)
    h.render(h.inverse if truthy else h.fn)
    return None


def _each(h: HelperCall) -> JSON:
    value = h.param(0)
    if h.fn is None:
        return None
    if isinstance(value, list) and (value or h.inverse is None):
        last = len(value) - 1
        for index, item in enumerate(value):
            data = {"first": index == 0, "last": index == last, "index": index}
            h.render(h.fn, _item_scope(h, item, index, data))
    elif isinstance(value, dict) and (value or h.inverse is None):
        last = len(value) - 1
        for index, (key, item) in enumerate(value.items()):
            data = {"first": index == 0, "last": index == last, "index": index, "key": key}
            h.render(h.fn, _item_scope(h, item, key, data))
    else:
        h.render(h.inverse)
    return None


def _item_scope(h: HelperCall, item: JSON, key: JSON, data: dict[str, JSON]) -> Scope:
    names = h.block_params
    params = dict(zip(names, (item, key), strict=False)) if names else {}
    return Scope(item, h.scope, params, data)


def _with(h: HelperCall) -> JSON:
    value = h.param(0)
    if is_truthy(value):
        params = {h.block_params[0]: value} if h.block_params else {}
        h.render(h.fn, Scope(value, h.scope, params))
    else:
        h.render(h.inverse)
    return None


def _lookup(h: HelperCall) -> JSON:
    collection, key = h.param(0), h.param(1)
    if isinstance(collection, list) and type(key) is int and key >= 0:
        return collection[key] if key < len(collection) else None
    if isinstance(collection, dict) and isinstance(key, str):
        return collection.get(key)
    return None


def _raw(h: HelperCall) -> JSON:
    h.render(h.fn)
    return None


def _log(h: HelperCall) -> JSON:
    parts = (f"{path}: {render_value(value)}" if path else render_value(value)
             for value, path in zip(h.params, h.param_paths, strict=False))
    level = h.hash.get("level")
    level = level if isinstance(level, str) else "info"
    if level.lower() not in _LEVELS:
        raise TemplateRenderError(f"Invalid logging level: {level}")
    LOG.log(_LEVELS[level.lower()], "%s", ", ".join(parts))
    return None


def _comparison(accept: Callable[[int], bool]) -> Callable[[HelperCall], JSON]:
    def compare(h: HelperCall) -> JSON:
        order = compare_json(h.param(0), h.param(1))
        return order is not None and accept(order)

    return compare


HELPERS: dict[str, HelperDef] = {
    "if": HelperDef(_if, "block"),
    "unless": HelperDef(_unless, "block"),
    "each": HelperDef(_each, "block"),
    "with": HelperDef(_with, "block"),
    "lookup": HelperDef(_lookup, "value"),
    "raw": HelperDef(_raw, "block"),
    "log": HelperDef(_log, "block"),
    "eq": HelperDef(lambda h: json_eq(h.param(0), h.param(1)), "bool"),
    "ne": HelperDef(lambda h: not json_eq(h.param(0), h.param(1)), "bool"),
    "gt": HelperDef(_comparison(lambda o: o > 0), "bool"),
    "gte": HelperDef(_comparison(lambda o: o >= 0), "bool"),
    "lt": HelperDef(_comparison(lambda o: o < 0), "bool"),
    "lte": HelperDef(_comparison(lambda o: o <= 0), "bool"),
    "and": HelperDef(lambda h: all(is_truthy(p) for p in h.params), "bool"),
    "or": HelperDef(lambda h: any(is_truthy(p) for p in h.params), "bool"),
    "not": HelperDef(lambda h: not is_truthy(h.param(0)), "bool"),
    "len": HelperDef(lambda h: json_len(h.param(0, "x")), "value"),
}
