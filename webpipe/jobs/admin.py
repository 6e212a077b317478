"""What `webpipe jobs status|list|retry|purge` reads and changes, in pgqueuer's tables.

Statuses as the CLI names them: `queued`, `running` (pgqueuer's `picked`), `dead`
(pgqueuer's `failed`: held after the last attempt, with its reason in the log table),
`done` (successful runs, from the log) and `failed` (failed attempts that were retried).
"""

from __future__ import annotations

from typing import Any

import orjson

from webpipe.jobs.store import ENTRYPOINT

_NAMES = {"queued": "queued", "picked": "running", "failed": "dead"}
_LIST_SQL = """
SELECT q.id, q.status, q.attempts, q.created, q.payload,
       (SELECT l.traceback->>'exception_message' FROM pgqueuer_log l
        WHERE l.job_id = q.id AND l.traceback IS NOT NULL ORDER BY l.id DESC LIMIT 1) AS error
FROM pgqueuer q WHERE q.entrypoint = $1 AND ($2::text IS NULL OR q.status::text = $2)
ORDER BY q.id LIMIT $3"""


async def status(conn: Any) -> dict[str, int]:
    counts = {"queued": 0, "running": 0, "done": 0, "failed": 0, "dead": 0}
    for row in await conn.fetch("SELECT status::text AS s, count(*) AS n FROM pgqueuer "
                                "WHERE entrypoint = $1 GROUP BY 1", ENTRYPOINT):
        counts[_NAMES.get(row["s"], row["s"])] = int(row["n"])
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE status = 'successful') AS done, count(*) FILTER "
        "(WHERE status = 'queued' AND traceback IS NOT NULL) AS failed FROM pgqueuer_log "
        "WHERE entrypoint = $1", ENTRYPOINT)
    counts["done"], counts["failed"] = int(row["done"]), int(row["failed"])
    age = await conn.fetchval("SELECT extract(epoch FROM now() - min(created))::float8 FROM "
                              "pgqueuer WHERE entrypoint = $1 AND status = 'queued'",
                              ENTRYPOINT)
    counts["oldest_queued_age_s"] = round(age or 0.0, 3)  # type: ignore[assignment]
    return counts


async def listing(conn: Any, state: str | None, limit: int) -> list[dict[str, Any]]:
    raw = {v: k for k, v in _NAMES.items()}.get(state, state) if state else None
    out = []
    for row in await conn.fetch(_LIST_SQL, ENTRYPOINT, raw, limit):
        payload = orjson.loads(row["payload"])
        step = payload["steps"][0]
        out.append({"id": row["id"], "status": _NAMES.get(row["status"], row["status"]),
                    "attempts": row["attempts"], "step": f"{step['file']}:{step['line']}",
                    "name": step.get("name"), "route": payload.get("route"),
                    "requestId": payload.get("requestId"),
                    "created": row["created"].isoformat(), "error": row["error"]})
    return out


async def retry(conn: Any, ids: list[int] | None) -> int:
    """Dead jobs back to the queue (all of them when `ids` is None); how many."""
    from pgqueuer.queries import Queries

    if ids is None:
        ids = [r["id"] for r in await conn.fetch(
            "SELECT id FROM pgqueuer WHERE entrypoint = $1 AND status = 'failed'", ENTRYPOINT)]
    dead = [r["id"] for r in await conn.fetch(
        "SELECT id FROM pgqueuer WHERE id = ANY($1::bigint[]) AND status = 'failed'", ids)]
    if dead:
        await Queries.from_asyncpg_connection(conn).requeue_jobs(dead)
    return len(dead)


async def purge(conn: Any, everything: bool) -> int:
    """Remove the dead jobs (every job of the app with `everything`); how many."""
    sql = ("DELETE FROM pgqueuer WHERE entrypoint = $1" if everything else
           "DELETE FROM pgqueuer WHERE entrypoint = $1 AND status = 'failed'")
    return int((await conn.execute(sql, ENTRYPOINT)).split()[-1])
