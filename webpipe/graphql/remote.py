"""Remote GraphQL: `|> graphql(NAME): `query ...`` against an endpoint from config (spec/graphql.md
"Remote endpoints"; issue 18 outcome 3).

A remote is a config block `graphql_NAME` with `url`, optional `schema` (an SDL snapshot
file, relative to the app), `timeoutMs` and one `headerNAME` key per request header
(`headerAuthorization: $GITHUB_AUTH`). The step's first inline argument is then the bare
name (the planner hook `plan_remote` turns it into the string literal the middleware
sees); a second argument gives the variables, else the state's `.variables` or
`.graphqlParams`, as for the local form. Requests go through `gql` with its aiohttp
transport on the `fetch` middleware's connector (one connection pool per app) and `fetch`'s
default timeout, its body bounds (`fetchMaxBytes`, `maxJsonDepth`, `maxJsonContainers`) and its
`Retry-After` handling; failures are `fetch`'s envelopes (`networkError`, `timeoutError`,
`httpError`, `responseTooLarge`) and a response with `errors` is a `graphqlError` envelope
carrying the server's `errors` (and its partial `data`). With a snapshot, every remote operation is
validated at load against it, errors at their `file:line:col`; `webpipe graphql pull APP`
writes the snapshots from the endpoints' introspection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from webpipe.errors import Diagnostic, StepError

if TYPE_CHECKING:
    from webpipe.executor.env import Env
    from webpipe.middleware.base import PlannedStep
    from webpipe.source import Span
    from webpipe.tracing import Tracer

JSON = Any
PREFIX = "graphql_"
HEADER_PREFIX = "header"
KEYS = {"url", "schema", "timeoutMs"}  # plus any `header<Name>`
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class Remote:
    name: str
    url: str
    headers: tuple[tuple[str, str], ...]
    schema: Path | None
    timeout_ms: int | None


def remote_of(env: Env, name: str) -> Remote | None:
    block = env.config_block(PREFIX + name)
    if block is None:
        return None
    headers = tuple((key[len(HEADER_PREFIX):], str(value)) for key, value in block.items()
                    if key.startswith(HEADER_PREFIX) and len(key) > len(HEADER_PREFIX)
                    and value is not None)
    schema = block.get("schema")
    timeout = block.get("timeoutMs")
    return Remote(name, str(block.get("url") or ""), headers,
                  env.base_dir / str(schema) if schema else None,
                  int(timeout) if timeout not in (None, "") else None)


def is_remote_name(arg: str) -> bool:
    """A `graphql` step's first argument names a remote when it is a bare name."""
    return _NAME.fullmatch(arg.strip()) is not None


def remote_names(env: Env) -> list[str]:
    return sorted(name[len(PREFIX):] for name in env.configs if name.startswith(PREFIX))


def plan_remote(plan: PlannedStep, env: Env) -> None:
    """Planner hook for `graphql` steps: a bare first argument names a remote. It becomes
    the string literal the middleware reads, and the operation is validated against the
    remote's schema snapshot when there is one."""
    from webpipe.executor.plan import compile_args

    args = plan.step.args
    if not args or not is_remote_name(args[0]):
        return
    name = args[0].strip()
    remote = remote_of(env, name)
    if remote is None:
        plan.arg_error = (f"graphql({name}): no remote named {name!r} "
                          f"(declare `config {PREFIX}{name} {{ url: ... }}`)")
        return
    literal, _ = compile_args(_with_args(plan.step, (f'"{name}"',)))
    rest, error = compile_args(_with_args(plan.step, args[1:]))
    plan.args, plan.arg_error = (*literal, *rest), error
    env.diagnostics.extend(validate_remote(remote, plan.config, plan.step.span))


def _with_args(step: Any, args: tuple[str, ...]) -> Any:
    from dataclasses import replace

    return replace(step, args=args)


def validate_remote(remote: Remote, operation: str, span: Span | None) -> list[Diagnostic]:
    """The operation checked against the remote's snapshot (nothing without one)."""
    if remote.schema is None or not operation.strip():
        return []
    from graphql import GraphQLError, parse, validate

    from webpipe.graphql.validation import RULES

    if not remote.schema.is_file():
        return [Diagnostic(f"graphql({remote.name}): schema snapshot {remote.schema} not "
                           "found (run `webpipe graphql pull APP`)", span, "warning",
                           "graphql-remote-schema")]
    try:
        errors = validate(_snapshot(str(remote.schema), remote.schema.stat().st_mtime_ns),
                          parse(operation), RULES)
    except GraphQLError as exc:
        errors = [exc]
    return [Diagnostic(f"graphql({remote.name}): {e.message}", _at(span, operation, e),
                       "error", "graphql-remote") for e in errors]


@lru_cache(maxsize=16)
def _snapshot(path: str, _mtime: int) -> Any:
    from graphql import build_schema

    return build_schema(Path(path).read_text(encoding="utf-8"))


def _at(span: Span | None, operation: str, error: Any) -> Span | None:
    """The `.wp` position of a GraphQL error's first location inside the operation."""
    if span is None or not error.locations:
        return span
    start = span.source.text.find(operation, span.start)
    if start < 0:
        return span
    line, column = error.locations[0].line, error.locations[0].column
    lines = operation.split("\n")
    offset = start + sum(len(text) + 1 for text in lines[:line - 1]) + column - 1
    return span.source.span(offset, offset)


async def execute_remote(env: Env, remote: Remote, operation: str, variables: dict[str, JSON],
                         timeout_ms: int | None, tracer: Tracer | None = None) -> JSON:
    """The response's `data`, or a `fetch`-style error envelope; with a `tracer`, the
    request carries the step's W3C `traceparent` (spec/tracing.md)."""
    import aiohttp
    from gql import Client, GraphQLRequest
    from gql.transport.exceptions import (
        TransportError,
        TransportQueryError,
        TransportServerError,
    )

    from webpipe.middleware.fetch import DEFAULT_TIMEOUT, FetchMiddleware
    from webpipe.middleware.fetch_response import error_envelope

    fetch = env.middleware("fetch")
    assert isinstance(fetch, FetchMiddleware)
    ms = timeout_ms or remote.timeout_ms
    headers = dict(remote.headers)
    if tracer is not None:
        tracer.inject(headers)
    transport = _bounded_transport()(
        url=remote.url, headers=headers, ssl=True,
        client_session_args={"connector": fetch.session().connector, "connector_owner": False,
                             "cookie_jar": aiohttp.DummyCookieJar(),
                             "timeout": aiohttp.ClientTimeout(
                                 total=ms / 1000 if ms else DEFAULT_TIMEOUT)})
    transport.limits = fetch.limits
    try:
        request = GraphQLRequest(operation, variable_values=variables or None)
        async with Client(transport=transport) as session:
            opened = transport.session
            try:
                return await session.execute(request)
            finally:  # gql leaves a session over a shared connector open
                if opened is not None:
                    await opened.close()
    except TransportQueryError as exc:
        first = (exc.errors or [{}])[0]
        message = first.get("message") if isinstance(first, dict) else None
        failed = {"type": "graphqlError", "message": str(message or exc), "url": remote.url,
                  "errors": exc.errors or [], "data": exc.data}
        if transport.status is not None and not 200 <= transport.status < 300:
            failed["status"] = transport.status
        return {"errors": [failed]}
    except TransportServerError as exc:
        return error_envelope("httpError", str(exc), url=remote.url, status=exc.code)
    except (TimeoutError, TransportError) as exc:
        for cause in _chain(exc):
            if isinstance(cause, _Answered):
                return cause.envelope
            if isinstance(cause, StepError):  # responseTooLarge, limitError
                raise cause from None
        if not _timed_out(exc):
            return error_envelope("networkError", f"error sending request for url "
                                  f"({remote.url}): {_cause(exc)}", url=remote.url)
        return error_envelope("timeoutError", f"error sending request for url ({remote.url}): "
                              f"{str(exc) or 'operation timed out'}")
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return error_envelope("networkError", f"error sending request for url ({remote.url}): "
                              f"{str(exc) or type(exc).__name__}", url=remote.url)
    except Exception as exc:  # gql's parse errors are GraphQLError
        raise StepError(f"graphql({remote.name}): {exc}") from None


class _Answered(Exception):
    """A non-GraphQL answer (an `httpError`/`networkError` envelope from `fetch`'s reader)
    carried out through gql, which wraps what its transport raises."""

    def __init__(self, envelope: JSON) -> None:
        super().__init__(envelope["errors"][0].get("message", ""))
        self.envelope = envelope


@lru_cache(maxsize=1)
def _bounded_transport() -> Any:
    """gql's aiohttp transport reading the body the way `fetch` does: chunk by chunk up to
    `fetchMaxBytes`, JSON within `maxJsonDepth`/`maxJsonContainers` (large bodies parsed
    off the loop), `Retry-After` of a 429/503 kept for `@retry`. A non-2xx answer whose
    body is a GraphQL result (`errors`) stays a `graphqlError` (with its `status`); any
    other is `fetch`'s `httpError`. Built on first use: gql is imported only here."""
    from gql.transport.aiohttp import AIOHTTPTransport

    from webpipe.middleware.fetch_response import read_response
    from webpipe.wire import MAX_JSON_DEPTH

    class BoundedTransport(AIOHTTPTransport):
        limits: Any = None
        status: int | None = None

        async def _get_json_result(self, response: Any) -> Any:
            self.response_headers = response.headers
            self.status = response.status
            limits = self.limits
            bounds = min(limits.max_json_depth, MAX_JSON_DEPTH), limits.max_json_containers
            read = await read_response(response, str(self.url), limits.fetch_max_bytes, *bounds)
            if "response" in read:
                return read["response"] if isinstance(read["response"], dict) else None
            first = read["errors"][0]
            if first.get("type") == "httpError":
                result = _graphql_result(first.get("message"), bounds)
                if result is not None:
                    return result
            raise _Answered(read)

    return BoundedTransport


def _graphql_result(text: Any, bounds: tuple[int, int]) -> dict[str, JSON] | None:
    """A non-2xx body (at most 1 MiB, within the JSON bounds) that is a GraphQL result
    with `errors`, else None."""
    from webpipe.middleware.fetch_response import parse_body
    from webpipe.wire import JsonOverLimit

    try:
        value = parse_body(text, *bounds) if isinstance(text, str) and len(text) < 1 << 20 \
            else None
    except JsonOverLimit:
        return None
    return value if isinstance(value, dict) and isinstance(value.get("errors"), list) else None


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _timed_out(exc: BaseException) -> bool:
    return any(isinstance(e, TimeoutError) for e in _chain(exc))


def _cause(exc: BaseException) -> str:
    """The innermost message (gql wraps aiohttp's errors in its own)."""
    for e in reversed(_chain(exc)):
        if str(e):
            return str(e)
    return type(exc).__name__
