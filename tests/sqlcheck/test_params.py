"""What load can tell about a `pg` step's parameters (no database needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from webpipe.loader import load_source
from webpipe.source import Source
from webpipe.sqlcheck.params import ParamShape, describe, step_params
from webpipe.sqlcheck.sites import collect
from webpipe.syntax import nodes as n
from webpipe.syntax.parser import parse


def shapes(text: str) -> list[ParamShape]:
    program = parse(Source("app.wp", text))
    out = []
    for item in program.items:
        if isinstance(item, n.Route | n.NamedPipeline):
            route = item if isinstance(item, n.Route) else None
            out += [shape for step, shape in step_params(item.pipeline, route)
                    if step.name == "pg"]
    return out


@pytest.mark.parametrize(("steps", "count"), [
    ("|> pg([.params.id, 2]): `SELECT 1`", 2),
    ("|> pg([]): `SELECT 1`", 0),
    ('|> pg([(.a | tonumber), "x\\(.b)", {k: .c}, [.d[]], .e // 1]): `SELECT 1`', 5),
    ("|> jq: `{ sqlParams: [.a, .b, .c] }`\n  |> pg: `SELECT 1`", 3),
    ("|> jq: `. + { sqlParams: [.a] }`\n  |> pg: `SELECT 1`", 1),
    ("|> jq: `.sqlParams = [.a, .b]`\n  |> pg: `SELECT 1`", 2),
    ("|> jq: `{ other: 1 }`\n  |> pg: `SELECT 1`", 0),
    ("|> jq: `.x | { sqlParams: [.a] }`\n  |> pg: `SELECT 1`", 1),
])
def test_counts_known_at_load(steps: str, count: int) -> None:
    [shape] = shapes(f"GET /a/:id\n  {steps}\n")
    assert shape.elements is not None and len(shape.elements) == count


@pytest.mark.parametrize("steps", [
    "|> pg: `SELECT 1`",  # whatever the request state holds
    "|> pg(.list): `SELECT 1`",
    "|> pg([.a, .b] + .rest): `SELECT 1`",
    "|> pg([.a, (.b | .c, .d)]): `SELECT 1`",  # a generator: two values
    "|> pg([.xs[]]): `SELECT 1`",
    "|> pg([.a?]): `SELECT 1`",
    "|> jq: `. + { x: 1 }`\n  |> pg: `SELECT 1`",
    "|> jq: `{ sqlParams: .list }`\n  |> pg: `SELECT 1`",
    "|> jq: `{ sqlParams: [.a] }` @async(x)\n  |> pg: `SELECT 1`",  # it does not feed pg
    "|> jq: `{ (.k): 1 }`\n  |> pg: `SELECT 1`",
    "|> fetch: `http://x`\n  |> pg: `SELECT 1`",
])
def test_counts_unknown_at_load(steps: str) -> None:
    [shape] = shapes(f"GET /a/:id\n  {steps}\n")
    assert shape.elements is None


def test_route_parameters_until_something_converts_them() -> None:
    raw, converted, nested = shapes("""GET /a/:id/*rest
  |> pg([.params.id, .params.rest, .params.other, .query.id]): `SELECT 1`
  |> jq: `.params.id |= tonumber`
  |> pg([.params.id]): `SELECT 1`

pipeline p =
  |> pg([.params.id]): `SELECT 1`
""")
    assert [raw.route_param(i) for i in range(5)] == ["id", "rest", None, None, None]
    assert converted.route_param(0) is None
    assert nested.route_param(0) is None  # no route: nothing is known about params
    assert raw.elements is not None and describe(raw.elements[0]) == ".params.id"


def test_sites_and_their_positions(tmp_path: Path) -> None:
    text = '''pg a = `  !raw SELECT 1;; `
lua l = `local r = executeSql([[
SELECT 2]], {})
-- executeSql("SELECT commented")
return r`
js j = """executeSql(`SELECT 4`); executeSql("SELECT " + x); executeSql('SELECT \\'5\\'')"""

GET /x
  |> pg: "SELECT 3"
  |> pg: a
  |> js: j
  |> lua: `return executeSql('SELECT 6')`
'''
    path = tmp_path / "app.wp"
    index = load_source(Source(str(path), text), path)
    sites, uses = collect(index)
    assert [(s.sql, s.origin) for s in sites] == [
        ("SELECT 1", "pg"), ("SELECT 2", "executeSql"), ("SELECT 4", "executeSql"),
        ("SELECT 3", "pg"), ("SELECT 6", "executeSql")]
    for site in sites:
        assert text[site.start:site.start + len(site.sql)] == site.sql
    assert [u.site.sql for u in uses] == ["SELECT 3", "SELECT 1"]
