"""The SQL side of `pg` (middleware.md §2.2-§2.3, spec/pg.md): a step's statement compiled
once at load and rendered per request.

`compile_statement` classifies the statement (row-returning, command or `!raw`), wraps a
row-returning one in the `json_agg(row_to_json(..))` CTE so PostgreSQL itself converts the
values to JSON, splits the text at its `$N` placeholders and notes whether it can leave
session state on its connection; `PgStatement.bind` picks each placeholder's cast from its
JSON parameter's type and `PgStatement.queries` gives the texts with those casts.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from webpipe.errors import ConfigError
from webpipe.middleware.base import JSON

Kind = Literal["rows", "command", "raw"]

ROWS_SQL = ("{head}_wp_t AS (\n{body}\n) "
            "SELECT COALESCE(json_agg(row_to_json(_wp_t)), '[]'::json) AS rows FROM _wp_t")
ROW_WORDS = frozenset({"select", "values", "table"})
WRITE_WORDS = frozenset({"insert", "update", "delete", "merge"})
MAIN_WORDS = ROW_WORDS | WRITE_WORDS


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words followed by `(` that are not calls of the app's functions: SQL syntax and type names
PAREN_WORDS = _words("""
    all and any array as between by case cast distinct else exists except filter from group
    having in intersect is join lateral like ilike not on or order over partition row select
    some then union using values when where with within bit char character decimal float
    interval numeric time timestamp varbit varchar
""")
# Built-in functions that only read (a statement calling anything else keeps the CTE: a
# schema change under a decision runs the statement a second time, pg_rows)
READ_ONLY_CALLS = _words("""
    abs age array_agg array_length array_position array_to_string avg bool_and bool_or btrim
    cardinality ceil ceiling char_length coalesce concat concat_ws count date_part
    date_trunc dense_rank every extract first_value floor format gen_random_uuid
    generate_series greatest initcap json_agg json_array_length json_build_array
    json_build_object json_extract_path json_typeof jsonb_agg jsonb_array_length
    jsonb_build_array jsonb_build_object jsonb_extract_path jsonb_typeof lag last_value lead
    least left length lower lpad ltrim max md5 min mod now nullif pg_typeof position random
    rank regexp_replace repeat replace reverse right round row_number rpad rtrim split_part
    sqrt starts_with string_agg strpos substr substring sum to_char to_date to_json to_jsonb
    to_number to_timestamp trim trunc unnest upper
""")

# Just enough SQL lexing to find words, parentheses and `$N` outside literals/comments.
_TOKENS = re.compile(r"""
    (?P<skip>
        [eE]'(?:[^'\\]|\\.|'')*'                        # E'...' string
      | '(?:[^']|'')*'                                  # '...' string
      | "(?:[^"]|"")*"                                  # quoted identifier
      | --[^\n]*                                        # line comment
      | /\*.*?\*/                                       # block comment
      | \$(?P<tag>(?:[^\W\d]\w*)?)\$.*?\$(?P=tag)\$     # dollar-quoted string
    )
  | (?P<word>[^\W\d][\w$]*)
  | (?P<param>\$\d+)
  | (?P<open>\()
  | (?P<close>\))
""", re.S | re.X)


TEXTS_PER_STATEMENT = 64  # rendered texts kept per statement (one per parameter-type signature)


@dataclass(frozen=True, slots=True)
class PgStatement:
    """A prepared step: the SQL as written, its class, and the query split at `$N`; for a
    statement that returns rows by itself, also the statement alone (`direct`), which
    `pg_rows` may run instead of the CTE once it knows the result's column types."""

    sql: str
    kind: Kind
    pieces: tuple[str, ...]
    slots: tuple[int, ...]
    session: bool = False  # may leave session state behind: reset the connection after it
    direct: tuple[tuple[str, ...], tuple[int, ...]] | None = None
    width: int = 0  # the highest `$N`: how many parameters are sent
    texts: dict[tuple[str | None, ...], tuple[str, str | None]] = field(
        default_factory=dict, compare=False, repr=False)

    def bind(self, params: Sequence[JSON], null_type: str | None = None,
             ) -> tuple[tuple[str | None, ...], list[Any]]:
        """The cast of every parameter (None: untyped) and the driver arguments."""
        casts: list[str | None] = []
        args: list[Any] = []
        # PostgreSQL ignores surplus typed parameters; asyncpg would reject them
        for param in params[:self.width]:
            cast, value = (null_type, None) if param is None else _bind(param)
            casts.append(cast)
            args.append(value)
        return tuple(casts), args

    def queries(self, casts: tuple[str | None, ...]) -> tuple[str, str | None]:
        """The query, and the statement alone (`direct`, else None), with those casts on
        their placeholders; kept per signature, so a request renders nothing."""
        texts = self.texts.get(casts)
        if texts is None:
            direct = _cast(*self.direct, casts) if self.direct is not None else None
            texts = (_cast(self.pieces, self.slots, casts), direct)
            if len(self.texts) < TEXTS_PER_STATEMENT:
                self.texts[casts] = texts
        return texts


def _cast(pieces: tuple[str, ...], slots: tuple[int, ...],
          casts: tuple[str | None, ...]) -> str:
    out = [pieces[0]]
    for slot, piece in zip(slots, pieces[1:], strict=True):
        cast = casts[slot - 1] if 0 < slot <= len(casts) else None
        out.append(f"(${slot}::{cast})" if cast else f"${slot}")
        out.append(piece)
    return "".join(out)


@functools.lru_cache(maxsize=512)
def compile_statement(config: str, *, force_rows: bool = False) -> PgStatement:
    """Classify and wrap one step's SQL (middleware.md §2.3, spec/pg.md)."""
    sql = config.strip()
    raw = sql.startswith("!raw")
    if raw:
        sql = sql[4:].strip()
    text = sql
    while text.endswith(";"):  # a trailing `;` would end up inside the CTE
        text = text[:-1].rstrip()
    kind: Kind
    kind, query, alone = ("raw", text, False) if raw else _wrap(text, force_rows)
    pieces, slots = split_params(query)
    session = touches_session(text)
    # only a statement that writes nothing may run alone (pg_rows: a schema change under
    # its decision runs it a second time, through the CTE)
    direct = split_params(text) if alone and not session and not may_write(text) else None
    return PgStatement(sql, kind, pieces, slots, session, direct, max(slots, default=0))


# Statements that can leave state on a connection for the next request to find (settings,
# LISTEN, cursors, prepared statements, transactions, locks, temporary tables): after one of
# these the connection gets asyncpg's full reset before it returns to the pool; after any
# other statement it returns as it is (spec/pg.md). Over-matching only costs a reset.
_SESSION_WORDS = frozenset({
    "reset", "listen", "unlisten", "declare", "prepare", "deallocate", "discard", "begin",
    "start", "commit", "rollback", "savepoint", "release", "lock", "load", "temp",
    "temporary", "set_config",
})
# ... and statements that start with these (an anonymous block or a procedure may do any of
# the above inside; `ON CONFLICT DO` and `UPDATE … SET` are not meant)
_SESSION_STARTS = frozenset({"set", "do", "call"})


def touches_session(text: str) -> bool:
    """Whether `text` (one or more statements) may change the connection's session state:
    a word of `_SESSION_WORDS` or an advisory-lock function anywhere outside literals and
    comments, or a statement starting with a word of `_SESSION_STARTS`."""
    initial, last = True, 0
    for m in _TOKENS.finditer(text):
        if m.lastgroup == "word":
            word = m.group().lower()
            initial = initial or ";" in text[last:m.start()]
            if word in _SESSION_WORDS or word.startswith("pg_advisory") or (
                    initial and word in _SESSION_STARTS):
                return True
            initial = False
        elif m.lastgroup != "skip":
            initial = False
        last = m.end()
    return False


def may_write(text: str) -> bool:
    """Whether `text` may write: a word of INSERT, UPDATE, DELETE or MERGE anywhere outside
    literals and comments (a data-modifying CTE, `SELECT … FOR UPDATE` too), or a call of a
    function not known to only read (`nextval(..)`, a function of the app's own, any
    schema-qualified one). Over-matching only keeps the CTE."""
    word: re.Match[str] | None = None
    for m in _TOKENS.finditer(text):
        group = m.lastgroup
        if group == "word":
            if m.group().lower() in WRITE_WORDS:
                return True
            word = m
            continue
        if group == "skip" and m.group().startswith('"'):  # a quoted name: maybe called
            word = m
            continue
        if (group == "open" and word is not None and not text[word.end():m.start()].strip()
                and _unknown_call(text, word)):
            return True
        word = None
    return False


def _unknown_call(text: str, word: re.Match[str]) -> bool:
    name = word.group().lower()  # a quoted name (`"f"(..)`) is never a known one
    qualified = text[:word.start()].rstrip().endswith(".")
    return qualified or not (name in READ_ONLY_CALLS or name in PAREN_WORDS)


def _wrap(text: str, force_rows: bool) -> tuple[Kind, str, bool]:
    """The class, the query to run, and whether the statement returns rows by itself."""
    first, main, main_start, returning = _shape(text)
    rows = main in ROW_WORDS or first == "(" or (main in WRITE_WORDS and returning)
    if not (rows or force_rows):
        return "command", text, False
    if first == "with" and main_start is not None:
        # splice into the statement's own WITH: data-modifying CTEs must stay top level
        head, body = text[:main_start].rstrip() + ",\n", text[main_start:]
    else:
        head, body = "WITH ", text
    return "rows", ROWS_SQL.format(head=head, body=body), rows


def _shape(text: str) -> tuple[str | None, str | None, int | None, bool]:
    """First token, main statement keyword and offset, and a top-level RETURNING."""
    depth, first, main, start, returning = 0, None, None, None, False
    for m in _TOKENS.finditer(text):
        group = m.lastgroup
        if group == "open":
            if first is None:
                first, start = "(", m.start()
            depth += 1
        elif group == "close":
            depth = max(0, depth - 1)
        elif group == "word" and depth == 0:
            word = m.group().lower()
            if first is None:
                first = word
            if main is None and word in MAIN_WORDS and (word == first or first == "with"):
                main, start = word, m.start()
            elif main is not None and word == "returning":
                returning = True
    return first, main, start, returning


def split_params(query: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The query's text around its `$N` placeholders (outside literals and comments), and
    the N of each (also used by webpipe.sqlcheck)."""
    pieces, slots, last = [], [], 0
    for m in _TOKENS.finditer(query):
        if m.lastgroup == "param":
            pieces.append(query[last:m.start()])
            digits = m.group()[1:]
            if len(digits) > 5 or int(digits) > 65535:  # PostgreSQL's own bound
                raise ConfigError(f"parameter {m.group()[:12]} is past $65535")
            slots.append(int(digits))
            last = m.end()
    pieces.append(query[last:])
    return tuple(pieces), tuple(slots)


def _bind(value: JSON) -> tuple[str | None, Any]:
    """(cast, driver value) for one JSON parameter (middleware.md §2.2)."""
    if value is None:
        return None, None  # untyped: PostgreSQL infers the type from the context
    if isinstance(value, bool):
        return "bool", value
    if isinstance(value, int):
        if -(2**63) <= value < 2**63:
            return "int8", value
        if 0 <= value < 2**64:
            return "int8", value - 2**64  # a u64 above the i64 range wraps [Parity]
        return "float8", float(value) if abs(value) < 2**1023 else float("inf")
    if isinstance(value, float):
        return "float8", value
    if isinstance(value, str):
        return "text", value
    return "jsonb", json.dumps(value, ensure_ascii=False, default=str)
