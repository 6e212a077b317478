"""`pg` rows without the JSON detour (issue 23, spec/pg.md "Rows"): a reading statement whose
result columns all have types whose Python value is exactly what PostgreSQL's `row_to_json`
writes runs as it is, and the row objects are built here, instead of PostgreSQL writing the
rows as JSON text (the `json_agg(row_to_json(..))` CTE) for Python to parse again.

Which way a statement goes is decided once per app and statement text (one per
parameter-type signature), the first time it runs: the CTE runs as before, then the
statement alone is prepared and its column types (`PreparedStatement.get_attributes()`)
decide. After that it runs through asyncpg's statement cache like any query, as long as its
results stay small (`ROWS_DIRECT_MAX` rows on average): for many rows orjson reading the
CTE's text costs less, and the two give the same rows. A schema change can alter the column
types under a decision (asyncpg re-prepares silently), so every row's value types are
checked against the decided ones (a set lookup of the row's type shape); a row that does
not fit drops the decision and that request's rows come from the CTE, which runs the
statement a second time. That is why only statements that write nothing (no INSERT, UPDATE,
DELETE, MERGE, no session change, no call of a function not known to only read:
`pg_statement.may_write`) may go direct. `WEBPIPE_PG_ROWS_CTE=1` switches the
direct path off (the differential tests and benchmarks compare the two).
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import NoneType
from typing import Any

from webpipe.middleware.base import JSON

FORCE_CTE_ENV = "WEBPIPE_PG_ROWS_CTE"  # "1": every row through the CTE (comparisons)
# Per row, asyncpg's records and the dicts built from them cost more client CPU (~0.65 µs
# for two columns) than orjson reading the same row from the CTE's text (~0.25 µs); the
# direct way saves ~10 µs per statement, so it is taken while results average at most this
ROWS_DIRECT_MAX = 16
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


@dataclass(slots=True)
class Direct:
    """A statement whose rows may be built here: per column, the Python type its values
    must have (else the schema changed), and the columns converted on the way ("json"
    parsed, "uuid" as text); `fits` remembers the rows' type shapes already checked (with
    NULLs); `rows` is a running mean of its row counts, which picks the cheaper way."""

    types: tuple[type, ...]
    converts: tuple[tuple[int, str], ...]
    rows: float = 0.0
    fits: set[tuple[type, ...]] = field(default_factory=set, compare=False, repr=False)

    @property
    def small(self) -> bool:
        """Whether its results are small enough for building rows here to cost less."""
        return self.rows <= ROWS_DIRECT_MAX

    def count(self, rows: int) -> None:
        self.rows += (rows - self.rows) / 8  # a mean over about the last eight runs


CTE = False  # the decision for a statement whose rows keep coming from the CTE
Decision = Direct | bool
SHAPES_PER_STATEMENT = 64  # type shapes remembered per statement (NULLs make new ones)


def cte_forced() -> bool:
    """Whether `WEBPIPE_PG_ROWS_CTE=1` asks for the CTE on every statement (read when a
    `pg` middleware is made: once per app)."""
    return os.environ.get(FORCE_CTE_ENV) == "1"


def plan(attributes: Sequence[Any], json_type: type) -> Direct | None:
    """The direct plan when every column type is accepted, else None (the CTE)."""
    types: list[type] = []
    converts: list[tuple[int, str]] = []
    for index, attribute in enumerate(attributes):
        oid = attribute.type.oid
        if oid in INTS or oid in TEXTS or oid == BOOL:
            types.append(int if oid in INTS else str if oid in TEXTS else bool)
        elif oid in JSONS:
            types.append(json_type)
            converts.append((index, "json"))
        elif oid == UUID:
            types.append(_uuid_type())
            converts.append((index, "uuid"))
        else:
            return None
    direct = Direct(tuple(types), tuple(converts))
    direct.fits.add(direct.types)
    return direct


def rows_of(records: Sequence[Any], direct: Direct, load_json: LoadJson,
            ) -> list[JSON] | None:
    """Row objects as the CTE's JSON parses (keys in column order, a repeated name at its
    first position with its last value: what parsing `{"a":1,"a":2}` gives), or None when
    a record does not fit the decision (the schema changed since)."""
    fits, converts = direct.fits, direct.converts
    rows: list[JSON] = []
    for record in records:
        shape = tuple(map(type, record))
        if shape not in fits and not _fits(shape, direct):
            return None
        if not converts:
            rows.append(dict(record.items()))
            continue
        values = list(record.values())
        for index, kind in converts:
            value = values[index]
            if value is not None:
                values[index] = load_json(value) if kind == "json" else str(value)
        rows.append(dict(zip(record.keys(), values, strict=True)))
    return rows


def _fits(shape: tuple[type, ...], direct: Direct) -> bool:
    """Whether a row's value types are the decided ones, NULLs anywhere."""
    if len(shape) != len(direct.types) or any(
            kind is not NoneType and kind is not expected
            for kind, expected in zip(shape, direct.types, strict=True)):
        return False
    if len(direct.fits) < SHAPES_PER_STATEMENT:
        direct.fits.add(shape)
    return True


@functools.cache
def _uuid_type() -> type:
    """The class asyncpg decodes uuid to (a subclass of uuid.UUID)."""
    uuid_type: type = importlib.import_module("asyncpg.pgproto.pgproto").UUID
    return uuid_type


async def decide(conn: Any, direct_query: str, args: Sequence[Any], cte_query: str,
                 json_type: type, rows: int) -> Decision:
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
    direct = plan(statement.get_attributes(), json_type)
    if direct is None:
        return CTE
    direct.rows = rows  # the first run's count starts the mean
    return direct


def remember(decisions: dict[str, Decision], query: str, decision: Decision) -> None:
    """Keep a decision, dropping the oldest past `DECISIONS_PER_APP` (a hostile mix of
    parameter types makes new statement texts)."""
    decisions[query] = decision
    if len(decisions) > DECISIONS_PER_APP:
        del decisions[next(iter(decisions))]
