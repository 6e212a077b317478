"""`input_keys`: which top-level input keys a jq program can read, and the proof that the
answer is safe: each program gives the same output on the input cut down to those keys."""

from __future__ import annotations

from typing import Any

import pytest

from webpipe.jqlib import JqError, compile_jq

STATE: dict[str, Any] = {
    "method": "GET", "path": "/a/7", "ip": "127.0.0.1", "query": {"q": "x", "n": 2},
    "params": {"id": 7, "w": "world"}, "headers": {"host": "h", "x-k": "v"},
    "cookies": {"s": "1"}, "body": {"order": {"items": [{"qty": 2, "price": 1.5}]}},
    "content_type": "application/json",
    "originalRequest": {"method": "GET", "params": {"id": 7}, "query": {"q": "x"}},
}

CASES: list[tuple[str, set[str] | None]] = [
    ("{ hello: .params.w }", {"params"}),
    (".params.id + 1", {"params"}),
    ('"\\(.method) \\(.path)"', {"method", "path"}),
    ("{params}", {"params"}),
    ("{ a: .query.q, b: .headers[\"x-k\"] }", {"query", "headers"}),
    ("[.body.order.items[] | .qty * .price] | add", {"body"}),
    (".params | .", {"params"}),
    (".params | keys", {"params"}),
    (".query.q as $q | { q: $q, m: .method }", {"query", "method"}),
    ("if .params.id > 3 then .query else .cookies end", {"params", "query", "cookies"}),
    ("try .params.nope.deeper catch .", {"params"}),
    (".params.id // .query.n", {"params", "query"}),
    ('error("no")', set()),
    ("[range(.query.n)]", {"query"}),
    ("{ ok: true }", set()),
    (".", None),
    ("keys", None),
    ("length", None),
    (".[]", None),
    (".[.method]", None),
    (". as $all | $all.params", None),
    ("map_values(1)", None),
    ("error", None),
    (".params.id = 1", None),
    ("$context.request", None),
    ("to_entries", None),
]


@pytest.mark.parametrize(("program", "expected"), CASES)
def test_input_keys(program: str, expected: set[str] | None) -> None:
    keys = compile_jq(program).input_keys
    assert (None if keys is None else set(keys)) == expected


@pytest.mark.parametrize(("program", "expected"), [c for c in CASES if c[1] is not None])
def test_the_cut_down_input_gives_the_same_output(program: str,
                                                  expected: set[str] | None) -> None:
    compiled = compile_jq(program)
    keys = compiled.input_keys
    assert keys is not None
    cut = {k: v for k, v in STATE.items() if k in keys}
    assert _outcome(compiled, cut) == _outcome(compiled, STATE)


def _outcome(program: Any, value: Any) -> Any:
    try:
        return ("ok", program.first(value))
    except JqError as exc:
        return ("error", str(exc))


def test_libjq_only_programs_claim_nothing() -> None:
    # `reduce` is outside the fast-path subset: no analysis, the whole input is assumed
    assert compile_jq("reduce .params[] as $x (0; . + 1)").input_keys is None
