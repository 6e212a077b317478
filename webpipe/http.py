"""The pure mapping between HTTP and pipeline state (language.md §6.1 and §7).

`request_state()` turns a Starlette request and a route's raw captures into the ordered initial
state object (the other direction, state → response, is `http_response.py`). The parsers underneath
(`coerce_number`, `parse_query`, `parse_cookies`, `parse_form`, `parse_body`) are pure functions,
public so the test runner can build the same values. Decisions and deviations: spec/http.md.
"""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any, cast
from urllib.parse import quote, unquote_to_bytes

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from webpipe.http_response import DEFAULT_CONTENT_TYPE, FRAMING_HEADERS, error_response
from webpipe.wire import (
    MAX_JSON_CONTAINERS,
    MAX_JSON_DEPTH,
    JsonOverLimit,
    collector_paused,
    header_text,
    loads_bounded,
)

JSON = Any  # a JSON value: None | bool | int | float | str | list[JSON] | dict[str, JSON]


# testing.md §4.1: Rust's strict `i64`/`f64` parsers, not Python's lenient int()/float().
_INT = re.compile(r"[+-]?([0-9]+)")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_I64_DIGITS = 19
_NUMBER_START = frozenset("0123456789+-.")

# The reference's `HeaderValue::to_str`: anything but visible ASCII and tab reads as "".
_PLAIN_PATH = re.compile(rb"[\x21-\x7e]*")
# Keep what is already ASCII (including `%XX` escapes); escape only raw non-ASCII bytes.
_PATH_SAFE = "".join(chr(code) for code in range(0x21, 0x7F))

_ERROR_TITLES: dict[int, str] = {400: "Bad Request", 413: "Payload Too Large"}


class BadRequest(Exception):
    """A request refused before any pipeline runs: malformed or too deeply nested JSON, an
    incomplete body (400), an oversized body (413)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    @property
    def error(self) -> str:
        return _ERROR_TITLES.get(self.status, "Bad Request")

    def to_response(self) -> Response:
        """`{"error": "Bad Request", "details": message}` with this error's status."""
        return error_response(self.error, self.message, self.status)


# --- parsers (pure) ---------------------------------------------------------------------------


def coerce_number(text: str) -> int | float | str:
    """Signed 64-bit integer text → int, finite Rust-syntax float text → float, else the text."""
    if not text or text[0] not in _NUMBER_START:
        return text
    match = _INT.fullmatch(text)
    # Count significant digits first: int() refuses very long strings, "007" is still 7.
    if match is not None and len(match.group(1).lstrip("0")) <= _I64_DIGITS:
        value = int(text)
        if _I64_MIN <= value <= _I64_MAX:
            return value
    if _FLOAT.fullmatch(text) is not None:
        number = float(text)
        if math.isfinite(number):
            return number
    return text


def parse_query(raw_query: bytes | str) -> dict[str, JSON]:
    """A query string → object: percent-decoded, `+` → space, last value wins, coerced."""
    return _parse_urlencoded(raw_query)


def parse_form(body: bytes | str) -> dict[str, JSON]:
    """An `application/x-www-form-urlencoded` body, decoded like a query string.

    Deviation (spec/http.md): the reference neither percent-decodes nor turns `+` into spaces.
    """
    return _parse_urlencoded(body)


def parse_cookies(header: str | None) -> dict[str, str]:
    """A `Cookie` header → object: split on `;`, trim, name and value split on `=`.

    As in the reference a value containing `=` is truncated and nothing is decoded. Decision
    (spec/http.md): no header, and empty segments, give no entry (the reference yields `"": ""`).
    """
    cookies: dict[str, str] = {}
    for segment in (header or "").split(";"):
        segment = segment.strip()
        if segment:
            pieces = segment.split("=")
            cookies[pieces[0]] = pieces[1] if len(pieces) > 1 else ""
    return cookies


def parse_body(body: bytes, content_type: str, max_depth: int = MAX_JSON_DEPTH,
               max_containers: int = MAX_JSON_CONTAINERS) -> JSON:
    """The request body as state: `{}` when empty, else parsed by content type (§6.1).

    Raises `BadRequest` (400) for a malformed JSON body (the reference gives `null`) and for
    one nested deeper than `max_depth` or holding more than `max_containers` arrays and
    objects (spec/limits.md `maxJsonDepth`, `maxJsonContainers`).
    """
    if not body:
        return {}
    if content_type.startswith("application/json"):
        try:
            return loads_bounded(body, max_depth, max_containers)
        except JsonOverLimit as exc:
            raise BadRequest(str(exc)) from None
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"invalid JSON body: {exc}") from None
    if content_type.startswith("application/x-www-form-urlencoded"):
        return parse_form(body)
    return body.decode("utf-8", "replace")


def _parse_urlencoded(raw: bytes | str) -> dict[str, JSON]:
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    pairs: dict[str, JSON] = {}
    for pair in data.split(b"&"):
        if pair:
            name, _, value = pair.partition(b"=")
            pairs[_form_decode(name)] = coerce_number(_form_decode(value))
    return pairs


def _form_decode(raw: bytes) -> str:
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8", "replace")


# --- request → state --------------------------------------------------------------------------


async def request_state(request: Request, params: dict[str, str], max_body: int,
                        path: str | None = None, only: frozenset[str] | None = None, *,
                        max_depth: int = MAX_JSON_DEPTH,
                        max_containers: int = MAX_JSON_CONTAINERS) -> dict[str, JSON]:
    """The initial state of a route (§6.1): `request_state_now`, then the body if one must be
    read (`read_state_body`). A caller may run the two itself to skip a coroutine."""
    state, pending = request_state_now(request, params, path, only)
    if pending is not None:
        await read_state_body(request, state, pending, max_body, max_depth=max_depth,
                              max_containers=max_containers)
    return state


async def read_state_body(request: Request, state: dict[str, JSON], content_type: str,
                          max_body: int, *, max_depth: int = MAX_JSON_DEPTH,
                          max_containers: int = MAX_JSON_CONTAINERS) -> None:
    """Read and parse the body into `state["body"]` (when the state has that key): at most
    `max_body` bytes (413), JSON at most `max_depth` levels deep (400). The time a body may
    take is bounded by the connection (`webpipe.protocol`, `bodyTimeoutMs`). A large body is
    parsed on a worker thread: 10 MiB of JSON would hold the event loop for tens of ms."""
    raw = await read_body(request, max_body)
    if len(raw) <= PARSE_INLINE_BYTES:
        body = parse_body(raw, content_type, max_depth, max_containers)
    else:
        body = await asyncio.to_thread(_parse_large, raw, content_type, max_depth,
                                       max_containers)
    if "body" in state:
        state["body"] = body


PARSE_INLINE_BYTES = 256 * 1024  # larger bodies are parsed off the event loop


def _parse_large(body: bytes, content_type: str, max_depth: int, max_containers: int) -> JSON:
    with collector_paused():
        return parse_body(body, content_type, max_depth, max_containers)


def request_state_now(request: Request, params: dict[str, str], path: str | None = None,
                      only: frozenset[str] | None = None) -> tuple[dict[str, JSON], str | None]:
    """The initial state of a route (§6.1), keys in the reference's order, with `{}` for the
    body; and the content type when a body must still be read (None: nothing to read).

    `params` are the route's raw captures, still percent-encoded (routes match the encoded path,
    as in the reference); they are decoded here. Raises `BadRequest` for a malformed JSON body
    (400) or a body over `max_body` bytes (413). Headers are scanned once, in one pass.
    `path` is `raw_path(request)` when the caller already has it. With `only`, just those
    top-level keys are built (the route was shown to read nothing else); the body is still
    read and checked, so a bad request is refused the same way.
    """
    if only is not None and not only.isdisjoint(_HEADER_DERIVED):
        only = None  # these need the full header scan anyway
    scope = request.scope
    method = scope["method"]
    scan: _HeaderScan | None = None
    if only is None:
        scan = _HeaderScan(scope.get("headers", ()))
        content_type = scan.headers.get("content-type", DEFAULT_CONTENT_TYPE)
        has_body = scan.has_body
    else:
        content_type, has_body = _framing(scope.get("headers", ()))
    # Methods without a body by convention skip the read unless one is announced.
    wants_body = has_body or method not in _BODYLESS_METHODS

    wanted = (_ALL_KEYS if only is None else only).__contains__

    query: dict[str, JSON] = {}
    if wanted("query") or wanted("originalRequest"):
        raw_query = scope.get("query_string")
        query = parse_query(raw_query) if raw_query else {}
    decoded = {name: coerce_number(decode_param(value)) for name, value in params.items()}
    state: dict[str, JSON] = {}
    if wanted("method"):
        state["method"] = method
    if wanted("path"):
        state["path"] = raw_path(request) if path is None else path
    ip = scan.client_ip(request) if scan is not None else None
    if ip is not None:
        state["ip"] = ip
    if wanted("query"):
        state["query"] = query
    if wanted("params"):
        state["params"] = decoded
    if scan is not None:
        state["headers"] = scan.headers
        cookie = scan.first.get(b"cookie")
        state["cookies"] = parse_cookies(cookie) if cookie else {}
    if wanted("body"):
        state["body"] = {}  # filled in by read_state_body, in this position
    if wanted("content_type"):
        state["content_type"] = content_type
    if wanted("originalRequest"):
        state["originalRequest"] = {"method": method, "params": dict(decoded),
                                    "query": dict(query)}
    return state, content_type if wants_body else None


_ALL_KEYS = frozenset({"method", "path", "ip", "query", "params", "headers", "cookies", "body",
                       "content_type", "originalRequest"})
# state keys whose values come from the header scan
_HEADER_DERIVED = frozenset({"ip", "headers", "cookies"})


def _framing(raw: Any) -> tuple[str, bool]:
    """Content type (last value wins, as in the headers object) and whether a body is
    announced, without building the headers object."""
    content_type, has_body = DEFAULT_CONTENT_TYPE, False
    for name, value in raw:
        kind = _SPECIAL_HEADERS.get(name.lower())
        if kind is _FRAMING:
            has_body = True
        elif kind is _CONTENT_TYPE:
            content_type = header_text(value)
    return content_type, has_body


_FIRST, _FRAMING, _CONTENT_TYPE = "first", "framing", "content-type"
# headers read by first occurrence, those announcing a body, and the content type
_SPECIAL_HEADERS = {b"cookie": _FIRST, b"x-forwarded-for": _FIRST, b"x-real-ip": _FIRST,
                    b"content-length": _FRAMING, b"transfer-encoding": _FRAMING,
                    b"content-type": _CONTENT_TYPE}
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


def reads_body(scope: Any) -> bool:
    """Whether building the request state reads a body: a method that has one by convention,
    or a body announced by `Content-Length` / `Transfer-Encoding` (as `request_state_now`)."""
    return scope["method"] not in _BODYLESS_METHODS or any(
        name.lower() in FRAMING_HEADERS for name, _ in scope.get("headers", ()))


class _HeaderScan:
    """One pass over the raw ASGI headers: the lower-cased dict (last value wins), the first
    value of the few headers read by first occurrence, and whether a body is announced."""

    __slots__ = ("first", "has_body", "headers")

    def __init__(self, raw: Any) -> None:
        self.headers: dict[str, str] = {}
        self.first: dict[bytes, str] = {}
        self.has_body = False
        headers, first = self.headers, self.first
        for name, value in raw:
            lowered = name.lower()
            text = header_text(value)
            headers[lowered.decode("latin-1")] = text
            kind = _SPECIAL_HEADERS.get(lowered)
            if kind is _FIRST:
                if lowered not in first:
                    first[lowered] = text
            elif kind is _FRAMING:
                self.has_body = True

    def client_ip(self, request: Request) -> str | None:
        forwarded = (self.first.get(b"x-forwarded-for") or "").split(",")[0].strip()
        if forwarded:
            return forwarded
        real_ip = (self.first.get(b"x-real-ip") or "").strip()
        if real_ip:
            return real_ip
        client = request.scope.get("client")
        return str(client[0]) if client and client[0] else None


async def read_body(request: Request, max_body: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `max_body` bytes.
    Kept in the scope, so a request that is run twice (see server.py) reads it again."""
    kept = request.scope.get(_BODY_KEY)
    if kept is not None:
        return cast(bytes, kept)
    declared = request.headers.get("content-length", "")
    # Refuse up front what the client announces as too large (the digit count guards int()).
    if declared.isascii() and declared.isdigit() and _exceeds(declared, max_body):
        raise _too_large(max_body)
    try:
        body = await _read_chunks(request, max_body)
    except ClientDisconnect:  # gone, or cut off at bodyTimeoutMs: nobody reads this answer
        raise BadRequest("request body incomplete: the connection was closed") from None
    request.scope[_BODY_KEY] = body
    return body


async def _read_chunks(request: Request, max_body: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise _too_large(max_body)
        chunks.append(chunk)
    return b"".join(chunks)


_BODY_KEY = "webpipe.body"


def request_headers(request: Request) -> dict[str, str]:
    """All headers, names lower-cased, repeated name → last value, non-ASCII value → ""."""
    return _HeaderScan(request.scope.get("headers", ())).headers


def client_ip(request: Request) -> str | None:
    """First `X-Forwarded-For` entry, else `X-Real-IP`, else the peer; None when none is known."""
    return _HeaderScan(request.scope.get("headers", ())).client_ip(request)


def raw_path(request: Request) -> str:
    """The URL path as received: still percent-encoded, without the query string."""
    raw = request.scope.get("raw_path")
    if not isinstance(raw, bytes):
        raw = str(request.scope["path"]).encode("utf-8")
    raw = raw.split(b"?", 1)[0]
    if _PLAIN_PATH.fullmatch(raw):
        return raw.decode("ascii")
    return quote(raw, safe=_PATH_SAFE)


def decode_param(raw: str) -> str:
    """Percent-decode a path capture (lossy UTF-8; `+` stays a plus)."""
    if "%" not in raw:
        return raw
    return unquote_to_bytes(raw).decode("utf-8", "replace")


def _exceeds(digits: str, limit: int) -> bool:
    return len(digits) > _I64_DIGITS or int(digits) > limit


def _too_large(max_body: int) -> BadRequest:
    return BadRequest(f"request body exceeds {max_body} bytes", status=413)


# --- state → response -------------------------------------------------------------------------
