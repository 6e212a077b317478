"""Writing a request's durable steps as jobs before its 2xx response is sent.

`enqueue_request()` runs once the status is known: for a 2xx it takes the request's durable
steps out of its deferred `@background` list and writes them in one statement (one
transaction) on a connection of the app's `pg` pool. Plain durable steps become one job
that runs them in declaration order (each step hands the rest on as a new job when it
succeeds); each `@background @async(name)` durable step is a job of its own. A failed write
turns the answer into a 503 `jobsError` envelope: the client never hears 2xx for work that
will not run.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any

import orjson

from webpipe.executor.process_tasks import PROCESS_TASKS, TaskInfo
from webpipe.executor.state import envelope
from webpipe.jobs.identity import identity_of, is_durable, settings, step_label
from webpipe.jobs.store import ENTRYPOINT, ensure_schema
from webpipe.metrics import METRICS

if TYPE_CHECKING:
    from webpipe.executor.context import RequestContext
    from webpipe.executor.env import Env
    from webpipe.executor.plan import StepPlan

log = logging.getLogger("webpipe.jobs")
_SCHEMA_READY = "jobs.schema"
_BATCHER = "jobs.batcher"
GATHER_S = 0.001


def take_durable(ctx: RequestContext, env: Env) -> list[tuple[StepPlan, Any]]:
    """The request's deferred durable steps, removed from its `@background` list."""
    tasks = ctx.existing_tasks()
    if tasks is None or not tasks.background or ctx.call_log is not None:
        return []  # `webpipe test` runs durable steps in-process, with its mocks, no database
    durable = [(p, s) for p, s in tasks.background if is_durable(p, env)]
    if durable:
        tasks.background[:] = [(p, s) for p, s in tasks.background if not is_durable(p, env)]
    return durable


def payloads(steps: list[tuple[StepPlan, Any]], env: Env, ctx: RequestContext,
             ) -> list[bytes]:
    """One payload per job: the plain steps as one chain, each `@async` one alone."""
    request_id = _request_id(ctx)
    chain: list[dict[str, Any]] = []
    alone: list[list[dict[str, Any]]] = []
    for plan, state in steps:
        entry = {**identity_of(plan, env), "name": plan.name, "input": state}
        (alone.append([entry]) if plan.tags.async_name else chain.append(entry))
    jobs = ([chain] if chain else []) + alone
    head: dict[str, Any] = {"route": ctx.route_label, "requestId": request_id}
    if ctx.tracer is not None:  # the job's span links to the request's (spec/tracing.md)
        carrier: dict[str, str] = {}
        ctx.tracer.inject(carrier)
        head["trace"] = carrier
    return [orjson.dumps({**head, "steps": job}) for job in jobs]


async def write(env: Env, jobs: list[bytes]) -> None:
    """Write the jobs durably (committed) before returning; raises when they were not.

    Writes are batched: while one batch is being committed, the jobs of the requests that
    arrive meanwhile wait and go together in the next, so concurrent requests share one
    commit (and its fsync, and pgqueuer's NOTIFY, which serialises commits) instead of
    queueing behind each other's. A lone request waits for nobody; after a batch, the next
    one waits GATHER_S (1 ms) so the clients just answered can join it (without it, batches
    alternate between "everyone" and "the one that came in during the commit", halving the
    rate). Each batch is a single INSERT, so a request's jobs are all written or none is.
    """
    batcher = env.resources.get(_BATCHER)
    if batcher is None:
        batcher = env.resources[_BATCHER] = _Batcher(env)
    await batcher.write(jobs)


class _Batcher:
    def __init__(self, env: Env) -> None:
        self.env = env
        self.pending: list[tuple[list[bytes], asyncio.Future[None]]] = []
        self.flushing = False
        self.gather = False  # a batch was just committed: the next one waits GATHER_S

    async def write(self, jobs: list[bytes]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((jobs, done))
        if not self.flushing:  # the flush is owned by the process, not by one request
            self.flushing = True
            PROCESS_TASKS.start(self._flush(), TaskInfo("", "jobs enqueue", "internal", ""))
        await done

    async def _flush(self) -> None:
        try:
            while self.pending:
                if self.gather:  # under load: let requests answered just now come back
                    await asyncio.sleep(GATHER_S)
                batch, self.pending = self.pending, []
                try:
                    await _insert(self.env, [job for jobs, _ in batch for job in jobs])
                except Exception as exc:  # every request of the batch gets its 5xx
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
                self.gather = True
        finally:
            self.flushing = self.gather = False


async def _insert(env: Env, jobs: list[bytes]) -> None:
    from pgqueuer.queries import Queries

    async with env.middleware("pg").connection() as conn:  # type: ignore[attr-defined]
        if not env.resources.get(_SCHEMA_READY):
            await ensure_schema(conn)
            env.resources[_SCHEMA_READY] = True
        queries = Queries.from_asyncpg_connection(conn)
        payloads: list[bytes | None] = list(jobs)
        if settings(env).sync_commit:  # one statement: its own transaction, committed
            await queries.enqueue([ENTRYPOINT] * len(jobs), payloads, [0] * len(jobs))
            return
        async with conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = off")
            await queries.enqueue([ENTRYPOINT] * len(jobs), payloads, [0] * len(jobs))


async def enqueue_request(ctx: RequestContext, env: Env, status: int,
                          steps: list[tuple[StepPlan, Any]] | None = None,
                          ) -> dict[str, Any] | None:
    """Write the request's jobs (2xx only); an error envelope when that failed."""
    if not 200 <= status < 300:
        return None
    steps = take_durable(ctx, env) if steps is None else steps
    if not steps:
        return None
    try:
        await write(env, payloads(steps, env, ctx))
    except Exception as exc:  # any driver, pool or serialisation failure: no 2xx
        first = steps[0][0]
        log.error("%s: %s: durable jobs not written: %s", first.step.span.label,
                  ctx.route_label, exc)
        return envelope("jobsError", f"background work could not be queued: {exc}",
                        first.name, first.location)
    for plan, _state in steps:
        METRICS.job(step_label(identity_of(plan, env)), "enqueued")
    return None


def enqueue_later(ctx: RequestContext, env: Env) -> list[asyncio.Task[Any]]:
    """Durable steps deferred where no response waits (an `@async` task's, a job's own
    nested ones, a script's): written by a task; a failed write is logged."""
    steps = take_durable(ctx, env)
    if not steps:
        return []
    plan = steps[0][0]
    info = TaskInfo(ctx.route_label, "jobs enqueue", "internal", plan.location)
    return [PROCESS_TASKS.start(_write_logged(steps, env, ctx), info)]


async def _write_logged(steps: list[tuple[StepPlan, Any]], env: Env, ctx: RequestContext,
                        ) -> None:
    failed = await enqueue_request(ctx, env, 200, steps)
    if failed is not None:
        log.error("durable steps of %s lost: %s", ctx.route_label,
                  failed["errors"][0]["message"])


def _request_id(ctx: RequestContext) -> str:
    headers = ctx.request.get("headers") if isinstance(ctx.request, dict) else None
    given = headers.get("x-request-id") if isinstance(headers, dict) else None
    return given if isinstance(given, str) and given else uuid.uuid4().hex
