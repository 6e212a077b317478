"""`webpipe test`: run the `describe`/`it` blocks of a program (spec/testing.md).

Tests run sequentially in describe order, each with a fresh request context (no feature
flags, no environment name), its own call log and a mock layer. A test fails when an
assertion fails and *errors* when something breaks before assertions can judge (a hard
pipeline error, a bad jq input, an unknown pipeline).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webpipe.errors import WebpipeError
from webpipe.executor.background import end_request
from webpipe.executor.compiled import Body, Call
from webpipe.executor.context import RequestContext
from webpipe.executor.env import Env, plan_step
from webpipe.executor.pipeline import run_body
from webpipe.executor.state import JSON_CT, Outcome
from webpipe.graphql import graphql_endpoint_path, handle_graphql_request
from webpipe.respond import answer, unhandled_status
from webpipe.routes import ServedRoute
from webpipe.routing import Router
from webpipe.server import build_served
from webpipe.source import Span
from webpipe.syntax import nodes as n
from webpipe.testing.assertions import Failure, TestOutcome, check
from webpipe.testing.mocks import MockInvoker, MockSet
from webpipe.testing.request import build_test_request
from webpipe.testing.values import TestValueError, eval_jq, let_value, render


@dataclass
class CaseResult:
    describe: str
    name: str
    passed: bool
    message: str | None = None
    errored: bool = False
    span: Span | None = None
    outcome: TestOutcome | None = None
    recorded: bool = False
    failures: list[Failure] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.describe} :: {self.name}"


class TestError(Exception):
    """The test errored (not a failed assertion): message and where."""

    def __init__(self, message: str, span: Span | None) -> None:
        super().__init__(message)
        self.message, self.span = message, span


def selected_tests(env: Env, pattern: str | None = None,
                   ) -> Iterator[tuple[n.Describe, n.It]]:
    """Every `it` of the program (imported modules too) in run order whose
    `describe :: it` title contains `pattern` (any case), or all of them."""
    for _module, item in env.index.all_items(n.Describe):
        assert isinstance(item, n.Describe)
        for test in item.tests:
            if not pattern or pattern.lower() in f"{item.name} :: {test.name}".lower():
                yield item, test


async def run_tests(env: Env, *, pattern: str | None = None, verbose: bool = False,
                    golden: Path | None = None, update: bool = False,
                    fail_fast: bool = False) -> list[CaseResult]:
    """Run the tests `pattern` selects; with `fail_fast`, stop after the first that does
    not pass."""
    router = build_served(env).router
    results: list[CaseResult] = []
    for describe, test in selected_tests(env, pattern):
        result = await run_case(env, router, describe, test, verbose)
        if golden is not None and result.outcome is not None and not result.errored:
            _golden(result, result.outcome, golden, update)
        results.append(result)
        if fail_fast and not result.passed:
            break
    return results


def _golden(result: CaseResult, outcome: TestOutcome, directory: Path, update: bool) -> None:
    from webpipe.testing.golden import check_golden, golden_path

    failure, result.recorded = check_golden(
        outcome, golden_path(directory, result.describe, result.name), update)
    if failure is not None:
        result.passed = False
        result.message = f"{result.message}; {failure}" if result.message else failure
        result.failures.append(Failure(failure, result.span))


async def run_case(env: Env, router: Router[ServedRoute], describe: n.Describe,
                   test: n.It, verbose: bool) -> CaseResult:
    result = CaseResult(describe.name, test.name, passed=False, span=test.span)
    await _fresh_stores(env)
    try:
        variables = {let.name: let_value(let.value) for let in (*describe.lets, *test.lets)}
        mocks = _mocks(describe.mocks, variables).overlay(_mocks(test.mocks, variables))
        outcome, not_found = await _trigger(env, router, test, variables, mocks,
                                            result.title)
        failures = [f for a in test.assertions
                    if (f := check(a, outcome, variables, verbose)) is not None]
    except TestValueError as exc:
        return _errored(result, exc.args[0], test.span)
    except TestError as exc:
        return _errored(result, exc.message, exc.span or test.span)
    except WebpipeError as exc:
        return _errored(result, exc.message, exc.span or test.span)
    if not failures and not_found:
        failures = [Failure(not_found, test.trigger.span)]
    result.outcome, result.failures = outcome, failures
    result.passed = not failures
    result.message = "; ".join(f.message for f in failures) or None
    return result


async def _fresh_stores(env: Env) -> None:
    """Each test starts with empty in-process caches and rate-limit counters (§4.1)."""
    for middleware in list(env.registry.instances.values()):
        await middleware.reset()


def _errored(result: CaseResult, message: str, span: Span | None) -> CaseResult:
    where = f"{span.source.name}:{span.line}" if span else "unknown location"
    result.errored, result.message = True, f"test errored at {where}: {message}"
    return result


def _mocks(mocks: tuple[n.Mock, ...], variables: dict[str, Any]) -> MockSet:
    out = MockSet()
    for mock in mocks:
        value = eval_jq(mock.returning, variables, f"mock `{mock.target}`")
        if mock.kind == "middleware":
            out.middleware[mock.middleware] = value
        elif mock.kind == "pipeline" and mock.name:
            out.pipelines[mock.name] = value
        elif mock.name is not None:
            out.named[mock.middleware, mock.name] = value
    return out


def _clause(test: n.It, kind: str, variables: dict[str, Any], default: Any) -> Any:
    for clause in reversed(test.clauses):
        if clause.kind == kind:
            if kind == "stdin":
                return render(clause.value.text, variables)
            return eval_jq(clause.value.text, variables, kind)
    return default


async def _trigger(env: Env, router: Router[ServedRoute], test: n.It,
                   variables: dict[str, Any], mocks: MockSet, title: str = "",
                   ) -> tuple[TestOutcome, str | None]:
    ctx = RequestContext(call_log={}, invoker=MockInvoker(mocks), extras={"invocation": "test"})
    if env.debugger is not None:  # `test --inspect`: the test is a frame (spec/debugger.md)
        return await env.debugger.run_test(
            title, test.span, variables, env, ctx,
            lambda: _run_trigger(env, router, test, variables, mocks, ctx))
    return await _run_trigger(env, router, test, variables, mocks, ctx)


async def _run_trigger(env: Env, router: Router[ServedRoute], test: n.It,
                       variables: dict[str, Any], mocks: MockSet, ctx: RequestContext,
                       ) -> tuple[TestOutcome, str | None]:
    trigger = test.trigger
    match trigger:
        case n.CallTrigger():
            return await _call_route(env, router, test, trigger, variables, ctx)
        case n.PipelineTrigger():
            return await _run_named(env, test, trigger, variables, ctx, mocks), None
        case n.VariableTrigger():
            return await _run_variable(env, test, trigger, variables, ctx, mocks), None
    raise AssertionError(trigger)


def _outcome(out: Outcome, ctx: RequestContext) -> TestOutcome:
    return TestOutcome(out.status or 200, out.content_type, out.state, ctx.call_log or {})


async def _call_route(env: Env, router: Router[ServedRoute], test: n.It,
                      trigger: n.CallTrigger, variables: dict[str, Any], ctx: RequestContext,
                      ) -> tuple[TestOutcome, str | None]:
    path = render(trigger.path.strip(), variables)
    raw_path, _, query = path.partition("?")
    if trigger.method == "POST" and raw_path == graphql_endpoint_path(env):
        ctx.request = _test_request(test, variables, "POST", raw_path, query, {})
        status, value = await handle_graphql_request(env, ctx.request["body"], ctx)
        return TestOutcome(status, JSON_CT, value, ctx.call_log or {}), None
    found = router.match(trigger.method, raw_path)
    if found is None:
        return TestOutcome(404, JSON_CT, None), f"Route not found: {trigger.method} {trigger.path}"
    compiled, params = found
    route = compiled.route
    state = _test_request(test, variables, trigger.method, raw_path, query, params)
    ctx.request = state
    ctx.route = f"{route.method} {route.path}"
    out = await run_body(compiled.body, state, env, ctx)
    # what the server answers (spec/server.md)
    body, answered = answer(out, state, unhandled_status(env))
    await run_background_now(ctx, env, answered or 200)
    return TestOutcome(answered or 200, out.content_type, body, ctx.call_log or {}), None


async def run_background_now(ctx: RequestContext, env: Env, status: int) -> None:
    """As the server does after the response (spec/tasks.md §4), but the test waits for
    the background steps, so `call` assertions see what they did."""
    started = end_request(ctx, env, status)
    if started:
        await asyncio.wait(started)


def _test_request(test: n.It, variables: dict[str, Any], method: str, path: str, query: str,
                  params: dict[str, str]) -> dict[str, Any]:
    return build_test_request(method, path, query, params,
                              headers=_clause(test, "headers", variables, {}),
                              cookies=_clause(test, "cookies", variables, {}),
                              body=_clause(test, "body", variables, {}))


async def _run_named(env: Env, test: n.It, trigger: n.PipelineTrigger,
                     variables: dict[str, Any], ctx: RequestContext, mocks: MockSet,
                     ) -> TestOutcome:
    if trigger.name in mocks.pipelines:
        return TestOutcome(200, JSON_CT, mocks.pipelines[trigger.name])
    body = next((env.named[m.path, trigger.name] for m in env.index.modules
                 if (m.path, trigger.name) in env.named), None)
    if body is None:
        raise TestError(f"Pipeline not found: {trigger.name}", trigger.span)
    _script_context(test, variables, ctx)
    state = _clause(test, "input", variables, {})
    ctx.request = state
    return _outcome(await run_body(body, state, env, ctx), ctx)


def _script_context(test: n.It, variables: dict[str, Any], ctx: RequestContext) -> None:
    args = _clause(test, "args", variables, [])
    options = _clause(test, "options", variables, {})
    if not isinstance(args, list):
        raise TestError("`and args are` must be a JSON array", test.span)
    if not isinstance(options, dict):
        raise TestError("`and options are` must be a JSON object", test.span)
    ctx.args = [a if isinstance(a, str) else _json(a) for a in args]
    ctx.options = options
    stdin = _clause(test, "stdin", variables, None)
    if stdin is not None:
        ctx.stdin = stdin.encode()
        ctx.extras["invocation"] = "script"


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


async def _run_variable(env: Env, test: n.It, trigger: n.VariableTrigger,
                        variables: dict[str, Any], ctx: RequestContext, mocks: MockSet,
                        ) -> TestOutcome:
    main = env.index.main
    variable = env.index.variables.get((main, trigger.kind, trigger.name))
    if variable is None:
        raise TestError(f"Variable not found: {trigger.kind} {trigger.name}", trigger.span)
    mocked = mocks.named_for(trigger.kind, trigger.name)
    if mocked is not None:
        return TestOutcome(200, JSON_CT, mocked[0])
    step = n.MiddlewareStep(name=trigger.kind, config=trigger.name,
                            config_kind=n.ConfigKind.IDENT, span=variable.span)
    body = Body(n.Pipeline(steps=(step,), span=variable.span),
                (Call(step, plan_step(env, main, step)),), None)
    state = _clause(test, "input", variables, {})
    ctx.request = state
    return _outcome(await run_body(body, state, env, ctx), ctx)
