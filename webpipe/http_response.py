"""State → HTTP response (language.md §7): `build_response()` turns a final state, content type
and status into a Starlette response; `error_response()` is the JSON envelope for hard errors;
`json_bytes()` serialises a value as the reference does; `preflight_response()` answers a CORS
preflight. The request side is `http.py`.
Decisions and deviations: spec/http.md.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from webpipe.errors import HardError

JSON = Any
DEFAULT_CONTENT_TYPE = "application/json"
# Bytes a response header value may carry (`HeaderValue::from_str`): no controls but tab.
_VALID_VALUE = re.compile(rb"[^\x00-\x08\x0a-\x1f\x7f]*")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Headers that describe the framing Starlette computed; a state may not override them.
FRAMING_HEADERS = frozenset({b"content-length", b"transfer-encoding"})


class BodyResponse(Response):
    """A response whose body is already bytes: the headers list is built directly (no
    Starlette header normalisation per request); otherwise a plain Starlette `Response`."""

    def __init__(self, body: bytes, status_code: int, content_type: bytes) -> None:
        self.body = body
        self.status_code = status_code
        self.background = None
        self.raw_headers = [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode("ascii"))]


def plain_headers(headers: list[tuple[bytes, bytes]]) -> bool:
    """No header value has a control character but tab (uvicorn's `send` refuses such a
    response). `build_response` already checked every header a state sets, so only a
    content type other than JSON's can fail this."""
    for name, value in headers:
        if name == b"content-type" and value is not _JSON_MEDIA \
                and _VALID_VALUE.fullmatch(value) is None:
            return False
    return True


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


def preflight_response(request: Request) -> Response:
    """Permissive CORS (spec §7.7): any origin, method and header."""
    asked = request.headers.get("access-control-request-headers", "*")
    return Response(status_code=200, headers={
        "access-control-allow-origin": "*",
        "access-control-allow-methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
        "access-control-allow-headers": asked,
        "access-control-max-age": "600",
    })


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
        if key not in FRAMING_HEADERS:
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
