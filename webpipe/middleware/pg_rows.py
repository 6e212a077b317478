"""`pg` rows without the JSON detour (issue 23, spec/pg.md "Rows"): a reading statement whose
result columns all have types whose Python value is exactly what PostgreSQL's `row_to_json`
writes runs as it is, and the row objects are built here, instead of PostgreSQL writing the
rows as JSON text (the `json_agg(row_to_json(..))` CTE) for Python to parse again.

Which way a statement goes is decided once per app and statement text (one per
parameter-type signature), the first time it runs: the CTE runs as before, then the
statement alone is prepared and its column types (`PreparedStatement.get_attributes()`)
decide. After that it runs through asyncpg's statement cache like any query. A schema change
can alter the column types under a decision (asyncpg re-prepares silently), so every value
is checked against the type its column was decided with (a few tens of ns each); a value of
another type drops the decision and that request's rows come from the CTE, which runs the
statement a second time. That is why only statements that write nothing (no INSERT, UPDATE,
DELETE, MERGE, no session change) may go direct. `WEBPIPE_PG_ROWS_CTE=1` switches the direct
path off (the differential tests and benchmarks compare the two).
"""

from __future__ import annotations

import importlib
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from webpipe.middleware.base import JSON

FORCE_CTE_ENV = "WEBPIPE_PG_ROWS_CTE"  # "1": every row through the CTE (comparisons)
DECISIONS_PER_APP = 4096  # statement texts decided per app; past it the oldest is dropped

# Result types whose value asyncpg decodes to exactly what row_to_json writes, by type OID
# (the result's column types as PostgreSQL reports them: a domain reports its base type).
# Refused, among others: float4/float8 (`1.0` is written `1`, NaN as "NaN"), numeric, oid
# and xid (written as strings, decoded to int), "char" (decoded to bytes), enums and other
# non-built-in types (a cast to json may apply, e.g. hstore), arrays, dates and times.
INTS = frozenset({20, 21, 23})  # int8, int2, int4: JSON numbers; Python ints are exact
TEXTS = frozenset({19, 25, 1042, 1043})  # name, text, bpchar (padding kept), varchar
BOOL = 16
JSONS = frozenset({114, 3802})  # json, jsonb: the text row_to_json embeds, parsed here
UUID = 2950  # written as its canonical lower-case text: `str()` of asyncpg's UUID

LoadJson = Callable[[Any], JSON]


@dataclass(frozen=True, slots=True)
class Direct:
    """A statement whose rows are built here: per column, the Python type its values
    must have (else the schema changed) and how it becomes JSON ("" as is, "json",
    "uuid")."""

    types: tuple[type, ...]
    kinds: tuple[str, ...]


CTE = False  # the decision for a statement whose rows keep coming from the CTE
Decision = Direct | bool


def cte_forced() -> bool:
    """Whether `WEBPIPE_PG_ROWS_CTE=1` asks for the CTE on every statement (read when a
    `pg` middleware is made: once per app)."""
    return os.environ.get(FORCE_CTE_ENV) == "1"


def plan(attributes: Sequence[Any], json_type: type) -> Direct | None:
    """The direct plan when every column type is accepted, else None (the CTE)."""
    types: list[type] = []
    kinds: list[str] = []
    for attribute in attributes:
        oid = attribute.type.oid
        if oid in INTS or oid in TEXTS or oid == BOOL:
            types.append(int if oid in INTS else str if oid in TEXTS else bool)
            kinds.append("")
        elif oid in JSONS:
            types.append(json_type)
            kinds.append("json")
        elif oid == UUID:
            types.append(uuid.UUID)
            kinds.append("uuid")
        else:
            return None
    return Direct(tuple(types), tuple(kinds))


def rows_of(records: Sequence[Any], direct: Direct, load_json: LoadJson,
            ) -> list[JSON] | None:
    """Row objects as the CTE's JSON parses (keys in column order, a repeated name at its
    first position with its last value: what parsing `{"a":1,"a":2}` gives), or None when
    a record does not fit the decision (the schema changed since)."""
    types, kinds, width = direct.types, direct.kinds, len(direct.types)
    rows: list[JSON] = []
    for record in records:
        if len(record) != width:
            return None
        row: dict[str, JSON] = {}
        for (name, value), expected, kind in zip(record.items(), types, kinds, strict=True):
            if value is None or (kind == "" and type(value) is expected):
                row[name] = value
            elif kind == "json" and type(value) is expected:
                row[name] = load_json(value)
            elif kind == "uuid" and isinstance(value, expected):
                row[name] = str(value)
            else:
                return None
        rows.append(row)
    return rows


async def decide(conn: Any, direct_query: str, args: Sequence[Any], cte_query: str,
                 json_type: type) -> Decision:
    """Prepare the statement alone and decide from its column types. Called after the CTE
    ran, so the statement is known to be valid as a CTE body; if PostgreSQL infers an
    untyped parameter differently alone than inside the CTE, the CTE stays."""
    asyncpg = importlib.import_module("asyncpg")
    try:
        statement = await conn.prepare(direct_query)
        if None in args:  # an untyped NULL: its type is inferred from the context
            wrapped = await conn.prepare(cte_query)
            if wrapped.get_parameters() != statement.get_parameters():
                return CTE
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return CTE  # always correct, only slower
    return plan(statement.get_attributes(), json_type) or CTE


def remember(decisions: dict[str, Decision], query: str, decision: Decision) -> None:
    """Keep a decision, dropping the oldest past `DECISIONS_PER_APP` (a hostile mix of
    parameter types makes new statement texts)."""
    decisions[query] = decision
    if len(decisions) > DECISIONS_PER_APP:
        del decisions[next(iter(decisions))]
