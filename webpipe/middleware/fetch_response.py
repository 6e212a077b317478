"""`fetch`'s response side, shared by its two clients (aiohttp, `fetch_fast`) and remote
GraphQL: the capped read of an aiohttp response, the body's text and JSON value under the
limits, the reported headers, `Retry-After`, and the error envelopes with their texts
(spec/fetch.md "Response and errors").
"""

from __future__ import annotations

import asyncio
import codecs
import datetime
import email.utils
from collections.abc import Sequence

import aiohttp

from webpipe.errors import StepError
from webpipe.middleware.base import JSON
from webpipe.wire import (
    MAX_JSON_CONTAINERS,
    MAX_JSON_DEPTH,
    JsonOverLimit,
    JsonTooDeep,
    collector_paused,
    header_text,
    loads_exact_bounded,
)

# Bodies above this many bytes are decoded and parsed on a worker thread (a 10 MiB JSON text
# takes ~50 ms to parse: too long to hold the event loop).
PARSE_INLINE_BYTES = 256 * 1024
_DECODED_ENCODINGS = frozenset({"gzip", "deflate", "br"})

# ---- response -----------------------------------------------------------------------------


async def read_response(response: aiohttp.ClientResponse, url: str, cap: int,
                        max_depth: int, max_containers: int) -> dict[str, JSON]:
    """The success payload (`response`, `status`, `headers`) or an `httpError`/`networkError`
    envelope; past `cap` or the JSON bounds, a `StepError` (shared with remote GraphQL)."""
    try:
        raw = await read_capped(response, cap, url)
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
        return error_envelope("networkError", read_failure(describe(exc)), url=url)
    return await shape_response(response.status, response.raw_headers, response.charset,
                                response.headers.get("retry-after"), raw, url,
                                (max_depth, max_containers))


def read_failure(cause: str) -> str:
    return f"Failed to read response body: {cause}"


async def shape_response(status: int, raw_headers: Sequence[tuple[bytes, bytes]],
                         charset: str | None, retry: str | None, raw: bytes, url: str,
                         bounds: tuple[int, int]) -> dict[str, JSON]:
    """A whole answer as the step's value: the success payload or an `httpError` envelope
    (whichever client read it); JSON past `bounds` is a `StepError`."""
    success = 200 <= status < 300
    if len(raw) <= PARSE_INLINE_BYTES:
        text, value, over = _decode_and_parse(raw, charset, success, bounds)
    else:
        text, value, over = await asyncio.to_thread(_parse_large, raw, charset, success,
                                                    bounds)
    del raw  # the bytes may be megabytes: not kept while the value lives on
    if not success:
        failed = error_envelope("httpError", text, url=url, status=status)
        wait = retry_after(retry)
        if status in (429, 503) and wait is not None:
            failed["errors"][0]["retryAfter"] = wait  # seconds; `@retry` honours it
        return failed
    if over is not None:
        key = "maxJsonDepth" if isinstance(over, JsonTooDeep) else "maxJsonContainers"
        raise StepError(f"fetch response from {url}: {over} ({key})", error_type="limitError")
    return {"response": value, "status": status, "headers": response_headers(raw_headers)}


def too_large(url: str, cap: int) -> StepError:
    return StepError(f"fetch response from {url} exceeds {cap} bytes (fetchMaxBytes)",
                     error_type="responseTooLarge")


async def read_capped(response: aiohttp.ClientResponse, cap: int, url: str) -> bytes:
    """The body, read chunk by chunk as it arrives; more than `cap` bytes (after
    decompression, or announced by Content-Length) ends the read, closes the connection and
    fails the step with `responseTooLarge`."""
    declared = response.content_length
    if declared is None or declared <= cap:
        body = await read_up_to(response.content, cap)
        if body is not None:
            return body
    response.close()  # the rest is never read: the connection cannot return to the pool
    raise too_large(url, cap)


async def read_up_to(stream: aiohttp.StreamReader, cap: int) -> bytes | None:
    """A body's chunks as they arrive until it ends (its bytes) or passes `cap` bytes
    (None: the rest is not read)."""
    body = bytearray()
    # readany() until b"" is what `iter_any()` yields, without its iterator layer
    while chunk := await stream.readany():
        body += chunk
        if len(body) > cap:
            return None
    return bytes(body)


Parsed = tuple[str, JSON, JsonOverLimit | None]  # text, value, the bound it passed


def _parse_large(raw: bytes, charset: str | None, parse: bool,
                 bounds: tuple[int, int]) -> Parsed:
    with collector_paused():  # see wire.collector_paused: ~4x shorter GIL hold
        return _decode_and_parse(raw, charset, parse, bounds)


def _decode_and_parse(raw: bytes, charset: str | None, parse: bool,
                      bounds: tuple[int, int]) -> Parsed:
    """Body text, and (when `parse`) its value by `parse_body`, or the bound it passed."""
    text = decode_body(raw, charset)
    if not parse:
        return text, None, None
    try:
        return text, parse_body(text, *bounds), None
    except JsonOverLimit as exc:
        return text, None, exc


def retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


def decode_body(raw: bytes, charset: str | None) -> str:
    """Body text: a BOM wins, then the declared charset, else UTF-8; bad bytes become U+FFFD."""
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8):].decode("utf-8", "replace")
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16", "replace")
    try:
        return raw.decode(charset or "utf-8", "replace")
    except LookupError:  # unknown or non-text codec name
        return raw.decode("utf-8", "replace")


def parse_body(text: str, max_depth: int = MAX_JSON_DEPTH,
               max_containers: int = MAX_JSON_CONTAINERS) -> JSON:
    """The parsed JSON value when `text` is strict JSON, else the text itself. orjson first,
    unless a run of 20 digits could be an integer beyond 64 bits (orjson would make it a
    float; we keep it exact); what orjson refuses (lone surrogates, out-of-range numbers,
    non-JSON) goes to the json module, which still refuses NaN/Infinity. JSON nested deeper
    than `max_depth` raises `JsonTooDeep` (so does JSON too deep for either parser), more
    than `max_containers` arrays and objects `JsonTooWide`."""
    try:
        return loads_exact_bounded(text, max_depth, max_containers,
                                   parse_constant=_reject_constant)
    except JsonOverLimit:
        raise
    except ValueError:
        return text


def _reject_constant(name: str) -> JSON:
    raise ValueError(f"{name} is not JSON")


def response_headers(raw: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    """Lower-case names; a repeated header keeps its last value; non-text values are ""."""
    headers = {name.decode("latin-1").lower(): header_text(value) for name, value in raw}
    if headers.get("content-encoding", "").strip().lower() in _DECODED_ENCODINGS:
        # The body was decompressed: these no longer describe it (as reqwest drops them).
        headers.pop("content-encoding", None)
        headers.pop("content-length", None)
    return headers


def error_envelope(kind: str, message: str, *, url: str | None = None,
                   status: int | None = None) -> dict[str, JSON]:
    """`{"errors": [{type[, status], message[, url]}]}` in the spec's field order."""
    error: dict[str, JSON] = {"type": kind}
    if status is not None:
        error["status"] = status
    error["message"] = message
    if url is not None:
        error["url"] = url
    return {"errors": [error]}


def describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return "invalid URL"  # their text repeats the URL, which the message already shows
    text = str(exc)
    if text:
        return text
    return "operation timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
