"""W14 (issue 24): what `check --db` adds to `check` on W10's 150 KB file, warm database.

Run: python benchmarks/sqlcheck.py

The file is W10's (`parse_check.generate`), next to a migration creating the `shelves`
table its statements read; the database is the embedded PostgreSQL in a temporary
directory. "Warm": the server is running and the scratch database is built (one check
before timing). Printed, best and median of 5 each:

- `check` (`check_file(path)`) and `check --db` (`check_file(path, db=True)`) run back to
  back 9 times, with the prepared-statement cache emptied before each `--db` run (every
  distinct statement is prepared again) and with it kept (a second check of an unchanged
  schema, as the editor's next save or a reload sees it); the addition is the median of
  the per-pair differences, since this machine's speed drifts within a minute;
- `check_sql(env)` alone on the loaded program (the part `--db` adds);
- the same on a variant whose every `pg` variable has its own text (W10's are all one text,
  so they are one prepare), to price many distinct statements prepared concurrently.
"""

from __future__ import annotations

import gc
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from parse_check import generate

MIGRATION = """-- UP --
CREATE TABLE shelves (id SERIAL PRIMARY KEY, label TEXT NOT NULL);
-- DOWN --
DROP TABLE shelves;
"""


def paired(base: Callable[[], object], extra: Callable[[], object], rounds: int = 9,
           ) -> tuple[list[float], list[float]]:
    """Both runs back to back each round (the machine's speed drifts within a minute, so
    the addition is read per pair): (base ms, extra ms) per round."""
    out: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for times, run in zip(out, (base, extra), strict=True):
            gc.collect()
            start = time.perf_counter()
            run()
            times.append((time.perf_counter() - start) * 1000)
    return out


def distinct(text: str) -> str:
    """Each `pg byIdN` statement made unique (`... AND N = N`)."""
    return re.sub(r"(pg byId(\d+) = `SELECT id, label FROM shelves WHERE id = \$1)`",
                  r"\1 AND \2 = \2`", text)


def measure(label: str, text: str, tmp: Path) -> None:
    import asyncio

    from webpipe.check import check_file
    from webpipe.program import load_program
    from webpipe.sqlcheck import check_sql, prepare

    path = tmp / f"{label}.wp"
    path.write_text(text)
    errors = [d for d in check_file(path, db=True) if d.severity == "error"]  # warm up
    assert not errors, errors[0].render()

    def cold() -> object:
        prepare._CACHE.clear()
        return check_file(path, db=True)

    statements = len(set(re.findall(r"pg byId\d+ = `([^`]*)`", text)))
    print(f"{label}: {len(text) / 1024:.0f} KiB, {statements} distinct statement(s); "
          "median of 9 (best)")
    for name, run in (("check --db, cache emptied", cold),
                      ("check --db, cache kept", lambda: check_file(path, db=True))):
        base, extra = paired(lambda: check_file(path), run)
        added = [b - a for a, b in zip(base, extra, strict=True)]
        print(f"  {name:<27} check {statistics.median(base):4.0f} ({min(base):.0f}) ms, "
              f"with --db {statistics.median(extra):4.0f} ({min(extra):.0f}) ms: "
              f"+{statistics.median(added):.0f} ms per pair")
    env = load_program(path)

    def only_sql(keep: bool) -> object:
        if not keep:
            prepare._CACHE.clear()
        return asyncio.run(check_sql(env))

    for keep in (False, True):
        cost, _ = paired(lambda k=keep: only_sql(k), lambda: None)  # type: ignore[misc]
        print(f"  check_sql alone, cache {'kept' if keep else 'emptied':<8}    "
              f"{statistics.median(cost):4.0f} ({min(cost):.0f}) ms")


def main() -> None:
    import os

    for name in ("DATABASE_URL", "WP_PG_HOST", "WP_PG_DATABASE", "WP_PG_EMBEDDED"):
        os.environ.pop(name, None)
    text = generate()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "migrations").mkdir()
        (root / "migrations" / "20260101000000_shelves.sql").write_text(MIGRATION)
        measure("W10", text, root)
        measure("W10 distinct", distinct(text), root)
        from webpipe.pgembed import stop_embedded

        stop_embedded()


if __name__ == "__main__":
    main()
