"""`check`: a test's `when calling METHOD /path` that no route of the program matches, and a
`when executing pipeline|variable` that names nothing.

A call no route matches can only see the 404 the runner gives it, which is nearly always a
typo in the path or the method, so `check` reports it at the `when calling` line with the
closest route of that method. Two calls stay quiet: a path built from test variables
(`/users/{{id}}`), which only the run knows, and a test that asserts `status is 404`, which
means to call nothing. An unknown pipeline or variable would make the test error at run
time; `check` says so first, with a did-you-mean (unless the test mocks that name).
"""

from __future__ import annotations

from collections.abc import Iterator

from webpipe.errors import Diagnostic
from webpipe.executor.env import Env
from webpipe.graphql.endpoint import graphql_endpoint_path
from webpipe.routing import Router
from webpipe.suggest import closest, did_you_mean
from webpipe.syntax import nodes as n

# what only a test reads: `serve` prints these as warnings instead of refusing the app
TEST_ONLY_CODES = frozenset({"unknown-route", "unknown-test-target"})


def check_test_calls(env: Env) -> list[Diagnostic]:
    router: Router[n.Route] = Router()
    for _module, route in env.index.routes():
        router.add(route.method, route.path, route)
    endpoint = graphql_endpoint_path(env)
    out = []
    for describe, test in _tests(env):
        trigger = test.trigger
        if isinstance(trigger, n.CallTrigger):
            path = trigger.path.strip().partition("?")[0]
            if "{{" in path or _expects_404(test) or router.match(trigger.method, path):
                continue
            if trigger.method == "POST" and path == endpoint:
                continue
            out.append(Diagnostic(_message(router, trigger.method, path), trigger.span,
                                  code="unknown-route"))
        elif not _mocked(describe, test, trigger.name):
            out += _unknown_target(env, trigger)
    return out


def _unknown_target(env: Env, trigger: n.Trigger) -> list[Diagnostic]:
    """`when executing pipeline|variable` naming nothing the runner would find."""
    index = env.index
    if isinstance(trigger, n.PipelineTrigger):
        known = {name for _, name in index.pipelines}
        what = f"pipeline {trigger.name!r}"
    elif isinstance(trigger, n.VariableTrigger):  # the runner looks in the main file only
        known = {name for (m, kind, name) in index.variables
                 if m is index.main and kind == trigger.kind}
        what = f"{trigger.kind} variable {trigger.name!r} in this file"
    else:
        return []
    if trigger.name in known:
        return []
    return [Diagnostic(f"no {what}: the test cannot run{did_you_mean(trigger.name, known)}",
                       trigger.span, code="unknown-test-target")]


def _mocked(describe: n.Describe, test: n.It, name: str) -> bool:
    return any(m.name == name for m in (*describe.mocks, *test.mocks))


def _tests(env: Env) -> Iterator[tuple[n.Describe, n.It]]:
    for module in env.index.modules:
        for describe in module.items(n.Describe):
            assert isinstance(describe, n.Describe)
            for test in describe.items:
                if isinstance(test, n.It):
                    yield describe, test


def _expects_404(test: n.It) -> bool:
    return any(isinstance(a, n.FieldAssertion) and a.subject == "status"
               and a.value is not None and a.value.text.strip() == "404"
               for a in test.assertions)


def _message(router: Router[n.Route], method: str, path: str) -> str:
    message = f"no route matches {method} {path}: the test can only get a 404"
    # compare with each route's path filled in from the call (`/users/:id` -> `/users/1`)
    same = {_filled(r.path, path): r.path for r in router.by_method.get(method, ())}
    near = closest(path, same)
    if near is not None:
        return f"{message}; did you mean {method} {same[near]}?"
    others = sorted(m for m, routes in router.by_method.items() if m != method
                    and any(r.regex.match(path) for r in routes))
    if others:
        return f"{message}; the path is served for {', '.join(others)}"
    return message


def _filled(route: str, path: str) -> str:
    """`route` with its `:param` and `*rest` segments taken from `path`, where it has them."""
    given = path.split("/")
    out: list[str] = []
    for i, segment in enumerate(route.split("/")):
        if segment[:1] == "*" and i < len(given):
            return "/".join([*out, *given[i:]])
        out.append(given[i] if segment[:1] == ":" and i < len(given) else segment)
    return "/".join(out)
