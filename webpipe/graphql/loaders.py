"""Batched `loader` resolvers with DataLoader semantics (graphql.md §5.2).

A type resolver whose pipeline has a top-level `|> loader(KEY_JQ): PIPELINE` step is
split there: the steps before it compute a key for each field occurrence, the keys of one
event-loop tick are collected by a per-execution `Batcher`, the loader pipeline runs once
per batch on `{keys, args, context}` and returns an object mapping key text to value, and
the steps after the loader step run on each loaded value. `loader` is not a middleware:
the runtime never runs that step, it only reads its argument and config.

Improvements over the reference: the arguments are part of the batch key (callers with
different arguments never share a batch), the `errors` check of §3.1 also applies to this
path, a loader pipeline that returns an error envelope fails its keys instead of loading
nulls, resolver mocks and the call log work for loader resolvers, and loader pipelines are
recorded under `pipeline.NAME` and honour pipeline mocks.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, GraphQLResolveInfo

from webpipe.executor.compiled import Body
from webpipe.executor.jqrun import first_sync, resolving
from webpipe.executor.process_tasks import PROCESS_TASKS, TaskInfo
from webpipe.executor.state import error_type
from webpipe.graphql.resolvers import (
    Binding,
    ExecutionRun,
    first_message,
    raw_arguments,
    record_and_mock,
    run_locked,
    run_of,
    to_field_value,
)
from webpipe.jqlib import JqError, JqProgram, compile_jq
from webpipe.syntax import nodes as n

if TYPE_CHECKING:
    from webpipe.executor.env import Env
    from webpipe.loader import Module

JSON = Any
LOADER_STEP = "loader"
MAX_BATCH = 1000  # the reference's DataLoader default
Group = tuple[str, str]  # (loader pipeline, arguments as canonical JSON)


def find_loader(pipeline: n.Pipeline) -> int | None:
    """Index of the first top-level `loader` step (only the first one counts)."""
    for index, step in enumerate(pipeline.steps):
        if isinstance(step, n.MiddlewareStep) and step.name == LOADER_STEP:
            return index
    return None


@dataclass(frozen=True, eq=False)
class LoaderSpec:
    """A loader resolver's pipeline, split at its `loader` step."""

    before: Body | None
    key: JqProgram | None
    key_error: str | None
    pipeline_name: str
    pipeline: n.NamedPipeline | None
    body: Body | None  # the loader pipeline's body, compiled at load
    after: Body | None


def loader_spec(env: Env, module: Module, whole: Body, at: int) -> LoaderSpec:
    """`whole` (a resolver's body) split at its `loader` step, the step at `at`."""
    step = whole.node.steps[at]
    assert isinstance(step, n.MiddlewareStep)
    name = (step.config or "").strip()
    key, key_error = None, None
    if not step.args:
        key_error = "loader needs a key expression: |> loader(KEY_JQ): PIPELINE"
    else:
        try:
            key = compile_jq(step.args[0], allow_context=False)
        except JqError as exc:
            key_error = f"loader key: {exc}"
    return LoaderSpec(before=_part(whole, slice(None, at)), key=key,
                      key_error=key_error, pipeline_name=name,
                      pipeline=env.index.pipeline(module, name) if name else None,
                      body=env.named_body(module, name) if name else None,
                      after=_part(whole, slice(at + 1, None)))


def _part(whole: Body, part: slice) -> Body | None:
    # the compiled steps themselves, with their load-time plans
    steps = whole.steps[part]
    nodes = whole.node.steps[part]
    return Body(n.Pipeline(steps=nodes, span=whole.node.span), steps, None) if steps else None


class LoaderResolver:
    """A batched type resolver (§5.2)."""

    def __init__(self, binding: Binding, spec: LoaderSpec) -> None:
        self.binding, self.spec = binding, spec

    async def __call__(self, parent: JSON, info: GraphQLResolveInfo[ExecutionRun], /,
                       **coerced: Any) -> JSON:
        run = run_of(info)
        args = raw_arguments(info, coerced, run.variables_for(info.operation))
        payload = {"parent": parent, "args": args, "context": run.context}
        mocked = record_and_mock(run, self.binding, payload)
        if mocked is not None:
            return to_field_value(mocked[0])
        batcher = batcher_of(run)
        group = batcher.group(self.spec, args)
        with batcher.computing(group):
            state: JSON = payload
            if self.spec.before is not None:
                state = to_field_value(await run_locked(run, self.spec.before, payload))
            future = batcher.load(run, group, self.spec, await self._key(run, state), args)
        value = await future
        if self.spec.after is not None:
            value = await run_locked(run, self.spec.after, value)
        return to_field_value(value)

    async def _key(self, run: ExecutionRun, state: JSON) -> JSON:
        key = self.spec.key
        if key is None:
            raise GraphQLError(self.spec.key_error or "loader key missing")
        try:
            return await resolving(lambda: first_sync(key, state, run.ctx), run.env, run.ctx)
        except JqError as exc:
            raise GraphQLError(f"loader key: {exc}") from None


def key_text(key: JSON) -> str:
    """How a key is looked up in the loader's result object (§5.2-5)."""
    return key if isinstance(key, str) else _compact(key)


def _compact(value: JSON) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _identity(value: JSON) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


@dataclass(eq=False)
class _Batch:
    spec: LoaderSpec
    args: JSON
    context: JSON
    keys: list[JSON] = field(default_factory=list)
    futures: dict[str, asyncio.Future[JSON]] = field(default_factory=dict)


class Batcher:
    """Collects loader keys per (loader pipeline, arguments) and flushes once per tick.

    A batch is flushed once an event-loop iteration passes without new keys and no
    resolver of its group is still running the steps before its `loader` step (those may
    wait for I/O or for the execution lock), so slow key computations do not split it."""

    def __init__(self) -> None:
        self.open: dict[Group, _Batch] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.busy: dict[Group, int] = {}
        self.changed = asyncio.Event()

    @staticmethod
    def group(spec: LoaderSpec, args: JSON) -> Group:
        named = spec.pipeline
        pipeline = (spec.pipeline_name if named is None  # one declaration, wherever it is
                    else f"{named.span.source.name}:{named.span.start}")
        return pipeline, _identity(args)

    @contextmanager
    def computing(self, group: Group) -> Iterator[None]:
        """Marks a resolver of `group` that has not queued its key yet."""
        self.busy[group] = self.busy.get(group, 0) + 1
        try:
            yield
        finally:
            self.busy[group] -= 1
            self.changed.set()

    def load(self, run: ExecutionRun, group: Group, spec: LoaderSpec, key: JSON,
             args: JSON) -> asyncio.Future[JSON]:
        batch = self.open.get(group)
        if batch is None:
            batch = self.open[group] = _Batch(spec, args, run.context)
            task = PROCESS_TASKS.start(self._dispatch(run, group, batch),
                                      TaskInfo("", f"loader batch {group}", "internal", ""))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        identity = _identity(key)
        future = batch.futures.get(identity)
        if future is None:
            future = batch.futures[identity] = asyncio.get_running_loop().create_future()
            batch.keys.append(key)
            if len(batch.keys) >= MAX_BATCH:
                self.open.pop(group, None)
        return future

    async def _dispatch(self, run: ExecutionRun, group: Group, batch: _Batch) -> None:
        try:
            await self._collect(group, batch)
            if self.open.get(group) is batch:
                del self.open[group]
            _settle(batch, await _load(run, batch))
        except GraphQLError as exc:
            _fail(batch, exc.message)
        except Exception as exc:  # a bug must not leave resolvers waiting forever
            _fail(batch, f"DataLoader error: {exc}")
        finally:
            _fail(batch, "DataLoader error: batch was cancelled")

    async def _collect(self, group: Group, batch: _Batch) -> None:
        size = -1
        while size != len(batch.keys) or self.busy.get(group):
            size = len(batch.keys)
            if self.busy.get(group) and len(batch.keys) < MAX_BATCH:
                self.changed.clear()
                await self.changed.wait()
            else:
                await asyncio.sleep(0)
            if len(batch.keys) >= MAX_BATCH:
                return

    async def aclose(self) -> None:
        """Cancel batches still pending when the execution ends (normally none)."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def batcher_of(run: ExecutionRun) -> Batcher:
    if run.batcher is None:
        run.batcher = Batcher()
    assert isinstance(run.batcher, Batcher)
    return run.batcher


async def _load(run: ExecutionRun, batch: _Batch) -> JSON:
    """Run the loader pipeline once for the batch; its failures fail every key."""
    spec = batch.spec
    payload = {"keys": list(batch.keys), "args": batch.args, "context": batch.context}
    if run.ctx.call_log is not None:
        run.ctx.call_log.setdefault(f"pipeline.{spec.pipeline_name}", []).append(payload)
    mocked = run.ctx.invoker.pipeline_mock(spec.pipeline_name)
    if mocked is not None:
        return mocked[0]
    if spec.body is None:
        raise GraphQLError(f"DataLoader error: pipeline {spec.pipeline_name!r} not found")
    try:
        return await run_locked(run, spec.body, payload)
    except GraphQLError as exc:
        raise GraphQLError(f"DataLoader error: {exc.message}") from None


def _settle(batch: _Batch, result: JSON) -> None:
    if error_type(result) is not None:
        raise GraphQLError(f"DataLoader error: {first_message(result['errors'])}")
    if not isinstance(result, dict):
        raise GraphQLError(f"Loader pipeline {batch.spec.pipeline_name} must return an "
                           f"object/map, got: {_compact(result)}")
    for key in batch.keys:
        future = batch.futures[_identity(key)]
        if not future.done():
            future.set_result(result.get(key_text(key)))


def _fail(batch: _Batch, message: str) -> None:
    for future in batch.futures.values():
        if not future.done():
            future.set_exception(GraphQLError(message))
            # every future has an awaiting resolver unless the execution was aborted;
            # mark the exception retrieved so an abort does not log "never retrieved"
            future.exception()
