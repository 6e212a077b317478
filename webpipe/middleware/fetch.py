"""`fetch`: one outgoing HTTP request per step (spec/middleware.md §3, spec/fetch.md).

The URL and options come from the inline arguments `fetch(URL, OPTS)` or, without them, from
the state keys `fetchUrl`/`fetchMethod`/`fetchHeaders`/`fetchBody`/`fetchTimeout` with the
config text as the fallback URL. A 2xx answer becomes `{response, status, headers}` (the body
parsed as JSON when it is valid JSON, else the text); every other outcome is a domain envelope
(`networkError`, `timeoutError`, `httpError`) returned as the step's value. The body is read
incrementally up to `fetchMaxBytes` (`config limits`, or the request's `maxBytes` option):
past it the read stops and the step fails with a `responseTooLarge` envelope; JSON nested
deeper than `maxJsonDepth` is a `limitError`; large bodies are decoded and parsed off the
event loop. One aiohttp session per middleware instance (so per app) carries every request,
created lazily inside the running loop and closed by `aclose()`.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import ClassVar

import aiohttp
from yarl import URL

from webpipe.errors import StepError
from webpipe.executor.deadlines import Deadline
from webpipe.middleware.base import (
    JSON,
    BaseMiddleware,
    Behavior,
    MiddlewareHost,
    StepCall,
    StepResult,
)
from webpipe.middleware.breaker import CONFIG_KEYS as BREAKER_KEYS
from webpipe.middleware.breaker import BreakerSet, open_breakers, through
from webpipe.middleware.fetch_fast import (
    USABLE,
    Failed,
    FastClient,
    HandOver,
    Progress,
    Target,
    TooLarge,
    eligible,
    too_many_redirects,
)
from webpipe.middleware.fetch_fast import fetch as fast_fetch
from webpipe.middleware.fetch_response import (
    describe,
    error_envelope,
    read_failure,
    read_response,
    shape_response,
    too_large,
)
from webpipe.source import Span
from webpipe.wire import MAX_JSON_DEPTH

DEFAULT_TIMEOUT: float = 10.0  # seconds, whole request; a per-request `timeout` replaces it
MAX_REDIRECTS = 10
USER_AGENT = "WebPipe/1.0"
PROXY_OPT_OUT = "WEBPIPE_DISABLE_SYSTEM_PROXY"
_DEFAULT_CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=DEFAULT_TIMEOUT)  # frozen: one for all
CONNECTION_LIMIT = 1000  # total open connections; no per-host cap, so @async fan-out is parallel

# Which keys hold method, headers, body, timeout and the response cap in each input form
# (middleware.md §3.1; the cap is spec/limits.md `fetchMaxBytes`).
ARG_KEYS = ("method", "headers", "body", "timeout", "maxBytes")
STATE_KEYS = ("fetchMethod", "fetchHeaders", "fetchBody", "fetchTimeout", "fetchMaxBytes")
# `WEBPIPE_FETCH_AIOHTTP` set (any value): every request through aiohttp, none through the
# fast client (spec/fetch.md "Fast client"), as WEBPIPE_JQ_LIBJQ does for jq's fast path.
FAST_OPT_OUT = "WEBPIPE_FETCH_AIOHTTP"
_FAST_TIMEOUT_MAX = 10**7  # seconds; longer timeouts go through aiohttp's own timer

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token: methods, header names
_MAX_U64 = 2**64 - 1


@dataclass(frozen=True, slots=True)
class FetchConfig:
    """What `prepare()` knows at load time: the trimmed config text (the fallback URL)."""

    url: str


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """One fully resolved outgoing request."""

    url: str
    method: str = "GET"
    headers: Mapping[str, str] | None = None
    body: bytes | None = None
    timeout: int | None = None
    query: tuple[tuple[str, str], ...] = ()
    max_bytes: int | None = None  # this request's response cap (else `fetchMaxBytes`)


class FetchMiddleware(BaseMiddleware):
    """`|> fetch: URL`, `|> fetch(URL_EXPR, OPTS_EXPR)`; results land under `.data`."""

    behavior: ClassVar[Behavior] = Behavior.MERGE
    wraps_data: ClassVar[bool] = True
    hedgeable: ClassVar[bool] = True
    config_keys: ClassVar[frozenset[str] | None] = frozenset(BREAKER_KEYS)

    def __init__(self, host: MiddlewareHost) -> None:
        super().__init__(host)
        self._session: aiohttp.ClientSession | None = None
        self._fast: FastClient | None = None  # with the session, when it serves requests
        self._loop: asyncio.AbstractEventLoop | None = None
        self.fast_enabled = USABLE and FAST_OPT_OUT not in os.environ
        self._breakers: BreakerSet | bool | None = False  # False: not read yet

    def prepare(self, config: str, span: Span | None) -> FetchConfig:
        # A literal URL is not rejected here: `fetchUrl` in the state may replace it, and a bad
        # URL is a branchable networkError at run time, as in the reference (spec/fetch.md).
        if self._breakers is False:  # a bad breaker backend is a load-time error
            self._breakers = open_breakers(self.host.config_block("fetch"), span)
        return FetchConfig(config.strip())

    async def run(self, state: JSON, prepared: object, call: StepCall) -> StepResult:
        assert isinstance(prepared, FetchConfig)
        if call.args:
            request = request_from_args(call.args)
        else:
            request = request_from_state(state, prepared.url)
        tracer = call.ctx.tracer if call.ctx is not None else None
        if tracer is not None:  # W3C traceparent of this step (spec/tracing.md)
            headers = dict(request.headers or {})
            tracer.inject(headers)
            request = replace(request, headers=headers)
        payload = await self.send(request)
        if call.target is not None or "errors" in payload:
            return StepResult(payload)
        # middleware.md §3.3: without a target the payload replaces `.data` on a state copy
        base = state if isinstance(state, dict) else {}
        return StepResult({**base, "data": payload})

    def hedge_method(self, state: JSON, prepared: object, call: StepCall) -> str:
        """`@hedge`: the method this call would send (only idempotent ones are hedged)."""
        assert isinstance(prepared, FetchConfig)
        return (request_from_args(call.args) if call.args
                else request_from_state(state, prepared.url)).method

    def dedup_identity(self, state: JSON, prepared: object, call: StepCall,
                       ) -> tuple[JSON, JSON]:
        """`@dedup`: the request this call would send, and its credential headers."""
        assert isinstance(prepared, FetchConfig)
        if call.args:
            request = request_from_args(call.args)
        else:
            request = request_from_state(state, prepared.url)
        headers = sorted((request.headers or {}).items())
        body = request.body.decode("latin-1") if request.body is not None else None
        sent = [request.method, request.url, sorted(request.query), headers, body,
                request.timeout, call.target]
        return sent, [[k, v] for k, v in headers if _is_credential(k)]

    async def send(self, request: FetchRequest) -> dict[str, JSON]:
        """Perform one request through the host's circuit breaker, when configured."""
        if self._breakers is False:
            self._breakers = open_breakers(self.host.config_block("fetch"))
        if self._breakers is None or self._breakers is True or not request.url:
            return await self.send_now(request)
        return await through(self._breakers, request.url, lambda: self.send_now(request))

    async def send_now(self, request: FetchRequest) -> dict[str, JSON]:
        """Perform one request; the success payload or a domain error envelope."""
        if not request.url:
            return error_envelope("networkError", "Missing URL for fetch middleware")
        if request.timeout == 0:  # the reference's zero-length timer fires before sending
            return error_envelope("timeoutError", _send_failure(request.url, TimeoutError()))
        session = self.session()
        fast = self._fast
        if fast is not None and (request.timeout or 0) <= _FAST_TIMEOUT_MAX:
            target = eligible(request.url, request.method, request.headers,
                              bool(request.query))
            if target is not None:
                return await self.send_fast(fast, target, request)
        timeout = _DEFAULT_CLIENT_TIMEOUT if request.timeout is None \
            else aiohttp.ClientTimeout(total=request.timeout)
        return await self.send_aiohttp(session, request.method, request.url, request.headers,
                                       request.body, timeout, MAX_REDIRECTS, request)

    async def send_aiohttp(self, session: aiohttp.ClientSession, method: str, url: str | URL,
                           headers: Mapping[str, str] | None, body: bytes | None,
                           timeout: aiohttp.ClientTimeout, redirects: int,
                           request: FetchRequest) -> dict[str, JSON]:
        """Through aiohttp: a whole request, or the rest of a chain the fast client began
        (then a TooManyRedirects names the chain's first URL, as one aiohttp run would)."""
        try:
            response = await session.request(
                method, url, headers=headers, data=body, params=request.query or None,
                timeout=timeout, max_redirects=redirects)
        except TimeoutError as exc:
            return error_envelope("timeoutError", _send_failure(request.url, exc))
        except aiohttp.TooManyRedirects as exc:
            cause = describe(exc) if url is request.url else too_many_redirects(request.url)
            return error_envelope("networkError",
                                  f"error sending request for url ({request.url}): {cause}",
                                  url=request.url)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return error_envelope("networkError", _send_failure(request.url, exc), url=request.url)
        cap, bounds = self.caps(request)
        try:
            return await read_response(response, request.url, cap, *bounds)
        finally:
            response.release()

    def caps(self, request: FetchRequest) -> tuple[int, tuple[int, int]]:
        """This request's body cap, and the JSON depth and container bounds."""
        limits = self.limits
        cap = limits.fetch_max_bytes if request.max_bytes is None else request.max_bytes
        return cap, (min(limits.max_json_depth, MAX_JSON_DEPTH), limits.max_json_containers)

    async def send_fast(self, client: FastClient, target: Target,
                        request: FetchRequest) -> dict[str, JSON]:
        """Through the fast client (spec/fetch.md "Fast client"): the same value, envelope
        or StepError aiohttp's path gives for the same exchange."""
        loop = asyncio.get_running_loop()
        total = DEFAULT_TIMEOUT if request.timeout is None else request.timeout
        deadline = loop.time() + total
        if total >= 5:  # aiohttp's ceil_threshold: a long timer ends on a whole second
            deadline = math.ceil(deadline)
        cap, bounds = self.caps(request)
        progress = Progress(request.url)
        sent = f"error sending request for url ({request.url}): "
        try:
            # the whole exchange, as aiohttp's total (a fan-out's calls share one timer)
            with Deadline(when=deadline):
                got = await fast_fetch(client, target, progress, request.method,
                                       dict(request.headers or {}), request.body, cap,
                                       MAX_REDIRECTS)
        except TimeoutError:
            if progress.headed:
                return error_envelope("networkError", read_failure("operation timed out"),
                                      url=request.url)
            cause = f"Connection timeout to host {progress.url}" if progress.connecting \
                else "operation timed out"
            return error_envelope("timeoutError", sent + cause)
        except Failed as exc:
            if exc.phase == "read":
                return error_envelope("networkError", read_failure(str(exc)), url=request.url)
            return error_envelope("networkError", sent + str(exc), url=request.url)
        except TooLarge:
            raise too_large(request.url, cap) from None
        if isinstance(got, HandOver):
            left = max(deadline - loop.time(), 0.001)
            return await self.send_aiohttp(self.session(), got.method, got.url, got.headers,
                                           got.body, aiohttp.ClientTimeout(total=left),
                                           got.redirects_left, replace(request, query=()))
        return await shape_response(got.status, got.raw_headers, got.charset,
                                    got.headers.get("retry-after"), got.body, request.url, bounds)

    def session(self) -> aiohttp.ClientSession:
        """The shared session, (re)created on first use in the running loop."""
        loop = asyncio.get_running_loop()
        if self._session is not None and not self._session.closed and self._loop is loop:
            return self._session
        if self._session is not None and not self._session.closed:
            # Left behind by another (finished) loop: it cannot be awaited from here.
            self._session.detach()
        trust_env = _uses_system_proxy()
        connector = aiohttp.TCPConnector(limit=CONNECTION_LIMIT, limit_per_host=0)
        # The fast client serves what aiohttp would send without a proxy (spec/fetch.md).
        self._fast = FastClient(connector) if self.fast_enabled and not trust_env else None
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # one app-wide session must not share cookies
            trust_env=trust_env,
            timeout=_DEFAULT_CLIENT_TIMEOUT)
        self._loop = loop
        return self._session

    async def aclose(self) -> None:
        """Close the shared session (app shutdown); a later request opens a new one."""
        breakers, self._breakers = self._breakers, False
        if breakers is not None and not isinstance(breakers, bool):
            await breakers.aclose()
        session, self._session, self._loop = self._session, None, None
        fast, self._fast = self._fast, None
        if fast is not None:
            fast.close()
        if session is not None and not session.closed:
            await session.close()


# ---- request ------------------------------------------------------------------------------


def request_from_args(args: tuple[JSON, ...]) -> FetchRequest:
    """Inline form `fetch(URL_EXPR, OPTS_EXPR?)`: wrong argument types are a `fetchError`."""
    url = args[0]
    if not isinstance(url, str):
        raise StepError(f"fetch argument 0 must evaluate to a string, got: {_show(url)}")
    options = args[1] if len(args) > 1 else {}
    if not isinstance(options, dict):
        raise StepError(f"fetch argument 1 must evaluate to an object, got: {_show(options)}")
    return build_request(url, options, ARG_KEYS, _query(options.get("query")))


def request_from_state(state: JSON, config_url: str) -> FetchRequest:
    """State form: `fetchUrl` (else the config text) and the other `fetch*` keys."""
    keys: Mapping[str, JSON] = state if isinstance(state, dict) else {}
    url = keys.get("fetchUrl")
    return build_request(url if isinstance(url, str) else config_url, keys, STATE_KEYS)


def build_request(url: str, source: Mapping[str, JSON], keys: tuple[str, ...],
                  query: tuple[tuple[str, str], ...] = ()) -> FetchRequest:
    """Read method/headers/body/timeout/cap from `source`; wrong types fall back to defaults."""
    method_key, headers_key, body_key, timeout_key, cap_key = keys
    headers = _headers(source.get(headers_key))
    body = None
    if body_key in source:  # present even when null: `null` is sent (middleware.md §3.1)
        body = _json_bytes(source[body_key])
        headers.setdefault("content-type", "application/json")
    headers.setdefault("user-agent", USER_AGENT)
    return FetchRequest(url.strip(), _method(source.get(method_key)), headers, body,
                        _timeout(source.get(timeout_key)), query, _timeout(source.get(cap_key)))


def _method(value: JSON) -> str:
    # middleware.md §3.2 [Improve]: upper-cased; an unusable method is GET, as in the reference
    if isinstance(value, str) and _TOKEN.fullmatch(value):
        return value.upper()
    return "GET"


def _headers(value: JSON) -> dict[str, str]:
    """String-valued entries with a valid name and value; others are silently dropped."""
    if not isinstance(value, dict):
        return {}
    return {name.lower(): text for name, text in value.items()
            if isinstance(text, str) and _TOKEN.fullmatch(name) and _valid_header_value(text)}


def _valid_header_value(text: str) -> bool:
    return all(ch == "\t" or (ord(ch) >= 0x20 and ord(ch) != 0x7F) for ch in text)


def _timeout(value: JSON) -> int | None:
    """A non-negative integer (seconds, or bytes for the cap); floats, booleans and anything
    else are ignored."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_U64:
        return value
    return None


def _query(value: JSON) -> tuple[tuple[str, str], ...]:
    """spec/fetch.md extension: `query` object → URL parameters (lists repeat the key)."""
    if not isinstance(value, dict):
        return ()
    pairs: list[tuple[str, str]] = []
    for key, item in value.items():
        for one in item if isinstance(item, list) else [item]:
            if one is not None:
                pairs.append((key, one if isinstance(one, str) else _json_text(one)))
    return tuple(pairs)


def _json_text(value: JSON) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_bytes(value: JSON) -> bytes:
    try:
        return _json_text(value).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a request body: send it \u-escaped
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def _show(value: JSON) -> str:
    text = _json_text(value)
    return text if len(text) <= 200 else text[:200] + "…"


_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ws_proxy", "wss_proxy")


def _uses_system_proxy() -> bool:
    """aiohttp's `trust_env` costs two thread hops per request (proxy and .netrc lookups);
    enable it only when a proxy is configured (and not opted out), which is equivalent."""
    if PROXY_OPT_OUT in os.environ:
        return False
    names = {name.lower() for name in os.environ}
    return any(var in names for var in _PROXY_VARS)


# ---- errors -------------------------------------------------------------------------------


_CREDENTIAL_WORDS = ("auth", "cookie", "token", "key", "secret", "session", "signature")


def _is_credential(header: str) -> bool:
    name = header.lower()
    return any(word in name for word in _CREDENTIAL_WORDS)


def _send_failure(url: str, exc: BaseException) -> str:
    return f"error sending request for url ({url}): {describe(exc)}"


