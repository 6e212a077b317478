"""W14 (issue 24): what `check --db` adds to `check` on W10's 150 KB file, warm database.

Run: python benchmarks/sqlcheck.py

The file is W10's (`parse_check.generate`), next to a migration creating the `shelves`
table its statements read; the database is the embedded PostgreSQL in a temporary
directory. "Warm": the server is running and the scratch database is built (one check
before timing). Printed, best and median of 5 each:

- `check`: `check_file(path)`;
- `check --db`: `check_file(path, db=True)`, with the prepared-statement cache emptied
  before each run (every distinct statement is prepared again), and with it kept (a second
  check of an unchanged schema, as the editor's next save or a reload sees it);
- the same two on a variant whose every `pg` variable has its own text (W10's are all one
  text, so they are one prepare), to price many distinct statements prepared concurrently.
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


def timed(run: Callable[[], object], rounds: int = 5) -> list[float]:
    out = []
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        run()
        out.append((time.perf_counter() - start) * 1000)
    return out


def distinct(text: str) -> str:
    """Each `pg byIdN` statement made unique (`... AND N = N`)."""
    return re.sub(r"(pg byId(\d+) = `SELECT id, label FROM shelves WHERE id = \$1)`",
                  r"\1 AND \2 = \2`", text)


def measure(label: str, text: str, tmp: Path) -> None:
    from webpipe.check import check_file
    from webpipe.sqlcheck import prepare

    path = tmp / f"{label}.wp"
    path.write_text(text)
    errors = [d for d in check_file(path, db=True) if d.severity == "error"]  # warm up
    assert not errors, errors[0].render()

    def cold() -> object:
        prepare._CACHE.clear()
        return check_file(path, db=True)

    runs = {
        "check": timed(lambda: check_file(path)),
        "check --db, cache emptied": timed(cold),
        "check --db, cache kept": timed(lambda: check_file(path, db=True)),
    }
    statements = len(set(re.findall(r"pg byId\d+ = `([^`]*)`", text)))
    print(f"{label}: {len(text) / 1024:.0f} KiB, {statements} distinct statement(s)")
    base = statistics.median(runs["check"])
    for name, times in runs.items():
        extra = "" if name == "check" else f"  (+{statistics.median(times) - base:.0f} ms)"
        print(f"  {name:<28} best {min(times):6.0f} ms  median "
              f"{statistics.median(times):6.0f} ms{extra}")


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
