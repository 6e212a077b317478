"""The pure mapping between HTTP and pipeline state (language.md §6.1 and §7).

`request_state()` turns a Starlette request and a route's raw captures into the ordered initial
state object; `build_response()` turns a final state, content type and status into a Starlette
response; `error_response()` is the JSON envelope for hard errors. The parsers underneath
(`coerce_number`, `parse_query`, `parse_cookies`, `parse_form`, `parse_body`) are pure functions,
public so the test runner can build the same values. Decisions and deviations: spec/http.md.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
from typing import Any, cast
from urllib.parse import quote, unquote_to_bytes

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from webpipe.errors import HardError
from webpipe.wire import (
    MAX_JSON_CONTAINERS,
    MAX_JSON_DEPTH,
    JsonOverLimit,
    collector_paused,
    header_text,
    loads_bounded,
)

JSON = Any  # a JSON value: None | bool | int | float | str | list[JSON] | dict[str, JSON]

DEFAULT_CONTENT_TYPE = "application/json"

# testing.md §4.1: Rust's strict `i64`/`f64` parsers, not Python's lenient int()/float().
_INT = re.compile(r"[+-]?([0-9]+)")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_I64_DIGITS = 19
_NUMBER_START = frozenset("0123456789+-.")

# The reference's `HeaderValue::to_str`: anything but visible ASCII and tab reads as "".
# Bytes a response header value may carry (`HeaderValue::from_str`): no controls but tab.
_VALID_VALUE = re.compile(rb"[^\x00-\x08\x0a-\x1f\x7f]*")
_PLAIN_PATH = re.compile(rb"[\x21-\x7e]*")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Headers that describe the framing Starlette computed; a state may not override them.
_FRAMING_HEADERS = frozenset({b"content-length", b"transfer-encoding"})
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
        name.lower() in _FRAMING_HEADERS for name, _ in scope.get("headers", ()))


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


class BodyResponse(Response):
    """A response whose body is already bytes: the headers list is built directly (no
    Starlette header normalisation per request); otherwise a plain Starlette `Response`."""

    def __init__(self, body: bytes, status_code: int, content_type: bytes) -> None:
        self.body = body
        self.status_code = status_code
        self.background = None
        self.raw_headers = [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode("ascii"))]


def build_response(state: JSON, content_type: str, status: int | None) -> Response:
    """The HTTP response for a finished pipeline (§7), without the CORS layer. `setCookies`
    and `setHeaders` become headers and leave the body (spec/server.md §6: a session token
    in a JSON body defeats `HttpOnly`)."""
    extra: dict[str, JSON] = {}
    if isinstance(state, dict) and ("setCookies" in state or "setHeaders" in state):
        extra = {k: state[k] for k in _RESPONSE_KEYS if k in state}
        state = {k: v for k, v in state.items() if k not in _RESPONSE_KEYS}
    if content_type == DEFAULT_CONTENT_TYPE:  # the common case, without the type dispatch
        response = BodyResponse(json_bytes(state), _status_code(status), _JSON_MEDIA)
    else:
        body, media_type = _encode_body(state, content_type)
        response = BodyResponse(body, _status_code(status),
                                media_type.encode("latin-1", "replace"))
    if extra:
        _set_cookies(response, extra.get("setCookies"))
        _set_headers(response, extra.get("setHeaders"))
    return response


_RESPONSE_KEYS = ("setCookies", "setHeaders")
_JSON_MEDIA = DEFAULT_CONTENT_TYPE.encode("latin-1")


def error_response(message: str, details: str, status: int = 500) -> Response:
    """A hard error as JSON: `{"error": message, "details": details}`."""
    body = json_bytes({"error": message, "details": details})
    return Response(body, status_code=status, headers={"content-type": DEFAULT_CONTENT_TYPE})


def json_bytes(value: JSON) -> bytes:
    """Compact JSON, key order kept; values orjson refuses fall back to the json module.
    A value too deep even for that (built by a step: request JSON is bounded by
    `maxJsonDepth`) is a `HardError`, never a RecursionError escaping the app."""
    try:
        return orjson.dumps(value)
    except TypeError:  # non-str keys, ints beyond 64 bits, lone surrogates, non-JSON objects,
        pass  # or more than 254 levels
    try:
        text = json.dumps(value, separators=(",", ":"), skipkeys=True, default=str)
    except RecursionError:
        raise HardError("the response value is nested too deeply to serialise") from None
    return text.encode("ascii")


def _status_code(status: int | None) -> int:
    if status is None:
        return 200
    return status if 100 <= status <= 999 else 500


def _encode_body(state: JSON, content_type: str) -> tuple[bytes, str]:
    if content_type.startswith("text/html"):
        html = _utf8(state) if isinstance(state, str) else json_bytes(state)
        return html, "text/html; charset=utf-8"
    if content_type.startswith("image/svg+xml"):
        return (_utf8(state) if isinstance(state, str) else b""), content_type
    if content_type.startswith("image/png"):
        return _png_bytes(state), content_type
    return json_bytes(state), DEFAULT_CONTENT_TYPE


def _png_bytes(state: JSON) -> bytes:
    if not isinstance(state, str):
        return b""
    try:
        return base64.b64decode(state, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text: send the text itself
        return _utf8(state)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "replace")


def _set_cookies(response: Response, cookies: JSON) -> None:
    if not isinstance(cookies, list):
        return
    for cookie in cookies:
        value = _header_value(cookie)
        if value is not None:
            response.raw_headers.append((b"set-cookie", value))


def _set_headers(response: Response, headers: JSON) -> None:
    if not isinstance(headers, dict):
        return
    for name, text in headers.items():
        value = _header_value(text)
        if value is None or not isinstance(name, str) or _TOKEN.fullmatch(name) is None:
            continue
        key = name.lower().encode("ascii")
        if key not in _FRAMING_HEADERS:
            response.raw_headers[:] = [item for item in response.raw_headers if item[0] != key]
            response.raw_headers.append((key, value))


def _header_value(text: JSON) -> bytes | None:
    """A string as header bytes, or None when it is not a string or not a valid value."""
    if not isinstance(text, str):
        return None
    try:
        raw = text.encode("utf-8").strip(b" \t")
    except UnicodeEncodeError:
        return None
    return raw if _VALID_VALUE.fullmatch(raw) is not None else None
