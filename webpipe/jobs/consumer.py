"""Running durable jobs: one pgqueuer `QueueManager` per process (serve or worker).

A job runs the first step of its payload on its input snapshot, with `.job = {id, attempt,
requestId}` added, under `@timeout` (each attempt) and `backgroundLifetimeMs`. A failure
with retries left asks pgqueuer for a database-level retry after the `@retry` backoff (full
jitter), so the pause survives a crash; after the last attempt `@onError` runs and the job
is held with status `failed` (the dead letter) and its reason. A success hands the
remaining chained steps on as a new job. pgqueuer heartbeats each running job; one whose
heartbeat is older than `heartbeatTimeoutMs` (a SIGKILLed worker) is picked again by any
consumer. `stop()` stops taking jobs, lets running ones finish within the grace and hands
the rest back to the queue as retries (spec/jobs.md §4).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson

from webpipe.db import SERVER_SETTINGS
from webpipe.executor.process_tasks import PROCESS_TASKS, TaskInfo
from webpipe.executor.retry import backoff_s, bounded, is_failure, retry_after_s
from webpipe.jobs.identity import durable_index, settings, step_label
from webpipe.jobs.store import ENTRYPOINT, asyncpg_module, ensure_schema, jobs_url
from webpipe.metrics import METRICS

if TYPE_CHECKING:
    from webpipe.executor.env import Env
    from webpipe.executor.plan import StepPlan
    from webpipe.tracing import Tracer, Tracing

log = logging.getLogger("webpipe.jobs")
_DEPTH_SQL = ("SELECT count(*) AS depth, coalesce(extract(epoch FROM now() - min(created)), 0)"
              "::float8 AS age FROM pgqueuer WHERE status = 'queued' AND entrypoint = $1")


class JobFailed(Exception):
    """A job that is dead-lettered: pgqueuer holds it as `failed` with this message."""


class Consumer:
    """Takes jobs from the app's database and runs them (see module docstring)."""

    def __init__(self, env_of: Callable[[], Env], concurrency: int | None = None,
                 tracing: Tracing | None = None) -> None:
        self.env_of = env_of
        self.tracing = tracing
        env = env_of()
        self.settings = settings(env)
        self.concurrency = concurrency or self.settings.concurrency
        self._slots = asyncio.Semaphore(self.concurrency)
        self._running: dict[int, asyncio.Task[Any]] = {}
        self._handing_back = False
        self.stopped = asyncio.Event()  # set by stop(): no new run, no new job
        self._qm: Any = None
        self._pool: Any = None

    async def run(self) -> None:
        """Consume until `stop()`; the pool is closed on the way out."""
        from pgqueuer import QueueManager
        from pgqueuer.queries import Queries

        # our own line names the step and reason; pgqueuer's traceback would repeat it
        logging.getLogger("pgqueuer").addFilter(_not_dead_letters)
        url = await jobs_url(self.env_of())
        self._pool = await asyncpg_module().create_pool(
            url, min_size=2, max_size=4, server_settings=SERVER_SETTINGS)
        try:
            async with self._pool.acquire() as conn:
                await ensure_schema(conn)
            self._qm = QueueManager(Queries.from_asyncpg_pool(self._pool))
            self._qm.entrypoint(ENTRYPOINT, on_failure="hold", accepts_context=False)(
                self.handle)
            batch = max(1, self.concurrency // 2)
            sampler = PROCESS_TASKS.start(self._sample(),
                                          TaskInfo("", "jobs sampler", "internal", ""))
            log.info("consuming jobs (concurrency %d, heartbeat timeout %d ms)",
                     self.concurrency, self.settings.heartbeat_timeout_ms)
            try:
                await self._qm.run(
                    dequeue_timeout=timedelta(milliseconds=self.settings.poll_ms),
                    batch_size=batch, max_concurrent_tasks=max(self.concurrency, 2 * batch),
                    heartbeat_timeout=timedelta(milliseconds=self.settings.heartbeat_timeout_ms))
            finally:
                sampler.cancel()
        finally:
            await self._pool.close()

    async def stop(self, run_task: asyncio.Task[Any], grace_s: float) -> None:
        """Take no new jobs; wait up to `grace_s` for running ones, hand the rest back."""
        self.stopped.set()
        if self._qm is not None:
            self._qm.shutdown.set()
        done, _ = await asyncio.wait([run_task], timeout=grace_s)
        if not done:
            self._handing_back = True
            for task in list(self._running.values()):
                task.cancel()
            done, _ = await asyncio.wait([run_task], timeout=10)
        if not done:
            run_task.cancel()
        with contextlib.suppress(BaseException):
            await run_task

    async def handle(self, job: Any) -> None:
        """pgqueuer's entrypoint: one attempt of one job."""
        from pgqueuer.errors import RetryRequested

        task = asyncio.current_task()
        assert task is not None
        self._running[job.id] = task
        try:
            async with self._slots:
                await self._run(job)
        except asyncio.CancelledError:
            if self._handing_back:  # shutdown: back to the queue, never lost
                log.warning("shutdown: job %s handed back to the queue", job.id)
                raise RetryRequested(timedelta(0), "handed back at shutdown") from None
            raise
        finally:
            self._running.pop(job.id, None)

    async def _run(self, job: Any) -> None:
        from pgqueuer.errors import RetryRequested

        env = self.env_of()
        payload = orjson.loads(job.payload)
        steps = payload["steps"]
        first = steps[0]
        found = durable_index(env).get(first["hash"])
        if found is None:
            where = step_label(first)
            METRICS.job(where, "dead_lettered")
            reason = (f"{where}: step {first['name']!r} is no longer in the app (its source "
                      f"changed since the job was enqueued; identity {first['hash']})")
            log.error("job %s dead-lettered: %s", job.id, reason)
            raise JobFailed(reason)
        plan, ident = found
        where = step_label(ident)
        attempt = job.attempts + 1
        job_info = {"id": job.id, "attempt": attempt, "requestId": payload.get("requestId")}
        state = first["input"]
        if isinstance(state, dict):
            state = {**state, "job": job_info}
        METRICS.job(where, "started")
        tracer = self.tracing.job(plan, payload.get("trace"), env) if self.tracing else None
        value = await self._attempt(plan, state, env, payload.get("route", ""), tracer)
        if not is_failure(value):
            METRICS.job(where, "succeeded")
            if len(steps) > 1:  # the next plain step of the request, in declaration order
                await self._qm.queries.enqueue(ENTRYPOINT, orjson.dumps(
                    {**payload, "steps": steps[1:]}), 0)
            return
        METRICS.job(where, "failed")
        if attempt <= (plan.tags.retry or 0):
            wait = retry_after_s(value)
            raise RetryRequested(timedelta(seconds=backoff_s(attempt) if wait is None
                                           else wait), "step failed")
        METRICS.job(where, "dead_lettered")
        await self._dead_letter(plan, first["input"], env, payload, value, attempt)

    async def _attempt(self, plan: StepPlan, state: Any, env: Env, route: str,
                       tracer: Tracer | None = None) -> Any:
        from webpipe.executor.background import end_request
        from webpipe.executor.context import RequestContext
        from webpipe.executor.steps import run_task_step

        ctx = RequestContext(env_name=env.env_name, route=route, extras={"invocation": "job"},
                             tracer=tracer)
        value: Any = {"error": "cancelled", "type": "cancelled"}  # a cancelled attempt's
        lifetime = PROCESS_TASKS.limits.background_lifetime_ms
        try:
            async with asyncio.timeout(lifetime / 1000):
                value = await bounded(run_task_step(plan, state, env, ctx),
                                      plan.tags.timeout_ms, plan.name, plan.location)
        except TimeoutError:
            value = {"error": f"cut at its background lifetime of {lifetime} ms",
                     "type": "timeout"}
        except Exception as exc:  # a hard error of the step: a failed attempt
            value = {"error": str(exc)}
        finally:
            if tracer is not None:
                tracer.task_ended(value)
        end_request(ctx, env, 500 if is_failure(value) else 200)  # what the step deferred
        return value

    async def _dead_letter(self, plan: StepPlan, state: Any, env: Env, payload: Any,
                           value: Any, attempts: int) -> None:
        from webpipe.executor.background import failed_step, failure_text
        from webpipe.executor.context import RequestContext

        ctx = RequestContext(env_name=env.env_name, route=payload.get("route", ""))
        info = TaskInfo(ctx.route_label, plan.tags.async_name or "", "background",
                        plan.location)
        await failed_step(plan, state, env, ctx, info, value, attempts)  # log, @onError
        raise JobFailed(f"{plan.step.span.label}: {plan.name} failed after {attempts} "
                        f"attempt(s): {failure_text(value)}")

    async def _sample(self) -> None:
        """Queue depth and the oldest queued job's age, for `--metrics`."""
        while True:
            with contextlib.suppress(Exception):  # a lost connection: next round
                row = await self._pool.fetchrow(_DEPTH_SQL, ENTRYPOINT)
                METRICS.job_queue(int(row["depth"]), float(row["age"]))
            await asyncio.sleep(max(1.0, self.settings.poll_ms / 1000))


def _not_dead_letters(record: logging.LogRecord) -> bool:
    return not (record.exc_info and isinstance(record.exc_info[1], JobFailed))
