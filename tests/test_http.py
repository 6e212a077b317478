"""Tests for webpipe.http: request → initial state (§6.1), state → response (§7)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message

from webpipe.errors import HardError
from webpipe.http import (
    BadRequest,
    coerce_number,
    parse_body,
    parse_cookies,
    parse_form,
    parse_query,
    request_state,
)
from webpipe.http_response import build_response, error_response, json_bytes

MAX_BODY = 1024


def make_request(
    *,
    method: str = "GET",
    path: str = "/",
    raw_path: bytes | None = None,
    query: bytes = b"",
    headers: Sequence[tuple[str, str | bytes]] = (),
    chunks: Sequence[bytes] = (b"",),
    client: tuple[str, int] | None = ("10.0.0.9", 5000),
    received: list[int] | None = None,
) -> Request:
    """A real Starlette request over a hand-built ASGI scope and receive callable."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [
            (name.lower().encode(), value if isinstance(value, bytes) else value.encode())
            for name, value in headers
        ],
        "client": client,
        "server": ("testserver", 80),
    }
    pending = list(chunks)

    async def receive() -> Message:
        if received is not None:
            received.append(1)
        if not pending:
            return {"type": "http.disconnect"}
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    return Request(scope, receive)


# --- number coercion (testing.md §4.1, language.md §6.1) ----------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("007", 7),
        ("07", 7),
        ("42", 42),
        ("+5", 5),
        ("-12", -12),
        ("-0", 0),
        ("9223372036854775807", 9223372036854775807),
        ("-9223372036854775808", -9223372036854775808),
        ("0000000000000000000000000000001", 1),
    ],
)
def test_integers(text: str, expected: int) -> None:
    value = coerce_number(text)
    assert type(value) is int
    assert value == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.5", 1.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e3", 1000.0),
        ("-2E-1", -0.2),
        ("1.e3", 1000.0),
        ("+.5e+2", 50.0),
        ("9223372036854775808", 9223372036854775808.0),
        ("-9223372036854775809", -9223372036854775809.0),
        ("123456789012345678901234567890", 1.2345678901234568e29),
        ("1e-400", 0.0),
    ],
)
def test_floats(text: str, expected: float) -> None:
    value = coerce_number(text)
    assert type(value) is float
    assert value == expected


@pytest.mark.parametrize(
    "text",
    [
        "inf",
        "-inf",
        "Infinity",
        "nan",
        "NaN",
        " 5",
        "5 ",
        "5\n",
        "1_0",
        "0x1f",
        "abc",
        "",
        "+",
        "-",
        ".",
        "e5",
        "1e",
        "1.2.3",
        "1e400",
        "1" * 400,
        "\u0661\u0662",  # Arabic-Indic digits: int() accepts them, Rust does not
        "\uff11\uff12",  # full-width digits
    ],
)
def test_strings_stay_strings(text: str) -> None:
    assert coerce_number(text) == text


def test_huge_digit_string_does_not_hit_int_limit() -> None:
    text = "9" * 5000
    assert coerce_number(text) == text  # float overflow → inf → stays a string


# --- query, form, cookies, body -----------------------------------------------------------------


def test_query_decoding_and_coercion() -> None:
    query = parse_query(b"q=hello+world&name=caf%C3%A9&n=07&f=1.5&k&raw=%2B1&x=a=b")
    assert query == {
        "q": "hello world",
        "name": "café",
        "n": 7,
        "f": 1.5,
        "k": "",
        "raw": 1,  # "+1" after decoding: a signed integer
        "x": "a=b",
    }


def test_query_repeated_key_last_wins_and_empty_pairs_skipped() -> None:
    assert parse_query("a=1&&a=2&b=&=v") == {"a": 2, "b": "", "": "v"}


def test_query_invalid_escapes_and_bytes_are_lossy() -> None:
    assert parse_query(b"a=%zz&b=%FF") == {"a": "%zz", "b": "\ufffd"}


def test_query_empty() -> None:
    assert parse_query(b"") == {}


def test_form_is_decoded_like_a_query() -> None:
    form = parse_form(b"title=Dune+Messiah&price=9.5&qty=003&tag=sci%2Dfi&note=")
    assert form == {"title": "Dune Messiah", "price": 9.5, "qty": 3, "tag": "sci-fi", "note": ""}


def test_cookies_split_and_trim() -> None:
    cookies = parse_cookies(" sid=abc ; theme=dark;token=a=b; flag ;empty=")
    assert cookies == {"sid": "abc", "theme": "dark", "token": "a", "flag": "", "empty": ""}


def test_cookies_are_not_decoded() -> None:
    assert parse_cookies("name=caf%C3%A9+x") == {"name": "caf%C3%A9+x"}


@pytest.mark.parametrize("header", [None, "", " ; ;"])
def test_no_cookies_give_empty_object(header: str | None) -> None:
    assert parse_cookies(header) == {}


def test_body_empty_is_empty_object() -> None:
    assert parse_body(b"", "text/plain") == {}


def test_body_json_keeps_key_order() -> None:
    body = parse_body(b'{"z": 1, "a": [true, null], "m": {"y": 2, "b": 3}}', "application/json")
    assert list(body) == ["z", "a", "m"]
    assert list(body["m"]) == ["y", "b"]


def test_body_json_with_charset_and_big_int() -> None:
    body = parse_body(b"[123456789012345678901234567890]", "application/json; charset=utf-8")
    assert body == [1.2345678901234568e29]


@pytest.mark.parametrize("raw", [b"{invalid}", b"{", b"NaN", b"  ", b'"\xff"'])
def test_body_malformed_json_is_bad_request(raw: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_body(raw, "application/json")
    assert caught.value.status == 400
    assert caught.value.message.startswith("invalid JSON body: ")


def test_body_form_and_text() -> None:
    assert parse_body(b"a=1&b=two", "application/x-www-form-urlencoded") == {"a": 1, "b": "two"}
    assert parse_body(b"hello \xff", "text/plain") == "hello \ufffd"
    assert parse_body(b"<x/>", "") == "<x/>"
    # The content type is matched case-sensitively, as in the reference.
    assert parse_body(b"{}", "Application/JSON") == "{}"


# --- request → state ----------------------------------------------------------------------------


async def test_state_has_every_key_in_order() -> None:
    request = make_request(
        method="POST",
        path="/shelves/7",
        raw_path=b"/shelves/%37",
        query=b"fields=label&n=2",
        headers=[
            ("Content-Type", "application/json"),
            ("Cookie", "sid=abc"),
            ("X-Reader", "r-1"),
        ],
        chunks=[b'{"title": ', b'"Dune"}'],
    )
    state = await request_state(request, {"id": "7"}, MAX_BODY)
    assert list(state) == [
        "method",
        "path",
        "ip",
        "query",
        "params",
        "headers",
        "cookies",
        "body",
        "content_type",
        "originalRequest",
    ]
    assert state["method"] == "POST"
    assert state["path"] == "/shelves/%37"
    assert state["ip"] == "10.0.0.9"
    assert state["query"] == {"fields": "label", "n": 2}
    assert state["params"] == {"id": 7}
    assert state["headers"] == {
        "content-type": "application/json",
        "cookie": "sid=abc",
        "x-reader": "r-1",
    }
    assert state["cookies"] == {"sid": "abc"}
    assert state["body"] == {"title": "Dune"}
    assert state["content_type"] == "application/json"
    assert state["originalRequest"] == {
        "method": "POST",
        "params": {"id": 7},
        "query": {"fields": "label", "n": 2},
    }
    assert list(state["originalRequest"]) == ["method", "params", "query"]


async def test_original_request_is_a_separate_snapshot() -> None:
    state = await request_state(make_request(query=b"a=1"), {"id": "1"}, MAX_BODY)
    state["query"]["a"] = 99
    state["params"]["id"] = 99
    assert state["originalRequest"]["query"] == {"a": 1}
    assert state["originalRequest"]["params"] == {"id": 1}


async def test_defaults_without_headers() -> None:
    state = await request_state(make_request(client=None), {}, MAX_BODY)
    assert "ip" not in state
    assert state["headers"] == {}
    assert state["cookies"] == {}
    assert state["body"] == {}
    assert state["content_type"] == "application/json"


async def test_path_drops_query_and_escapes_raw_non_ascii() -> None:
    request = make_request(path="/a b/é", raw_path=b"/a%20b/\xc3\xa9?x=1")
    assert (await request_state(request, {}, MAX_BODY))["path"] == "/a%20b/%C3%A9"


async def test_path_without_raw_path_is_encoded() -> None:
    request = make_request(path="/a b")
    del request.scope["raw_path"]
    assert (await request_state(request, {}, MAX_BODY))["path"] == "/a%20b"


async def test_params_are_decoded_then_coerced() -> None:
    params = {"who": "ada%20lovelace", "n": "%2B12", "slash": "a%2Fb", "plus": "a+b", "bad": "%FF"}
    state = await request_state(make_request(), params, MAX_BODY)
    assert state["params"] == {
        "who": "ada lovelace",
        "n": 12,
        "slash": "a/b",
        "plus": "a+b",
        "bad": "\ufffd",
    }


async def test_headers_lower_cased_last_wins_non_ascii_empty() -> None:
    request = make_request(
        headers=[("X-Tag", "one"), ("x-tag", "two"), ("X-Name", b"caf\xc3\xa9"), ("X-Tab", "a\tb")]
    )
    state = await request_state(request, {}, MAX_BODY)
    assert state["headers"] == {"x-tag": "two", "x-name": "", "x-tab": "a\tb"}


async def test_cookies_from_first_cookie_header_only() -> None:
    request = make_request(headers=[("Cookie", "a=1; b=2"), ("Cookie", "c=3")])
    assert (await request_state(request, {}, MAX_BODY))["cookies"] == {"a": "1", "b": "2"}


@pytest.mark.parametrize(
    ("headers", "client", "expected"),
    [
        (
            [("X-Forwarded-For", " 203.0.113.5 , 10.0.0.1"), ("X-Real-IP", "198.51.100.2")],
            None,
            "203.0.113.5",
        ),
        (
            [("X-Forwarded-For", "203.0.113.5"), ("X-Forwarded-For", "192.0.2.1")],
            None,
            "203.0.113.5",
        ),
        ([("X-Real-IP", " 198.51.100.2 ")], ("10.0.0.9", 1), "198.51.100.2"),
        ([("X-Forwarded-For", " , 10.0.0.1")], ("10.0.0.9", 1), "10.0.0.9"),
        ([], ("::1", 1), "::1"),
    ],
)
async def test_ip_sources(
    headers: list[tuple[str, str]], client: tuple[str, int] | None, expected: str
) -> None:
    state = await request_state(make_request(headers=headers, client=client), {}, MAX_BODY)
    assert state["ip"] == expected
    assert list(state)[2] == "ip"


async def test_form_body_and_content_type_verbatim() -> None:
    ctype = "application/x-www-form-urlencoded; charset=UTF-8"
    request = make_request(
        method="POST", headers=[("Content-Type", ctype)], chunks=[b"name=Ada+L&age=36"]
    )
    state = await request_state(request, {}, MAX_BODY)
    assert state["body"] == {"name": "Ada L", "age": 36}
    assert state["content_type"] == ctype


async def test_missing_content_type_parses_json() -> None:
    state = await request_state(make_request(method="POST", chunks=[b"[1, 2]"]), {}, MAX_BODY)
    assert state["body"] == [1, 2]


async def test_malformed_json_raises_400() -> None:
    request = make_request(
        method="POST", headers=[("Content-Type", "application/json")], chunks=[b"{nope"]
    )
    with pytest.raises(BadRequest) as caught:
        await request_state(request, {}, MAX_BODY)
    assert caught.value.status == 400
    response = caught.value.to_response()
    assert response.status_code == 400
    payload = json.loads(bytes(response.body))
    assert list(payload) == ["error", "details"]
    assert payload["error"] == "Bad Request"
    assert payload["details"].startswith("invalid JSON body: ")


async def test_oversized_body_is_refused_without_reading_it_all() -> None:
    received: list[int] = []
    request = make_request(method="POST", chunks=[b"x" * 100] * 10, received=received)
    with pytest.raises(BadRequest) as caught:
        await request_state(request, {}, 250)
    assert caught.value.status == 413
    assert len(received) == 3  # stopped at the chunk that crossed the limit
    response = caught.value.to_response()
    assert response.status_code == 413
    assert json.loads(bytes(response.body))["error"] == "Payload Too Large"


@pytest.mark.parametrize("declared", ["251", "9" * 30])
async def test_oversized_content_length_is_refused_before_reading(declared: str) -> None:
    received: list[int] = []
    request = make_request(
        method="POST", headers=[("Content-Length", declared)], chunks=[b"x" * 10], received=received
    )
    with pytest.raises(BadRequest) as caught:
        await request_state(request, {}, 250)
    assert caught.value.status == 413
    assert received == []


async def test_body_at_the_limit_is_accepted() -> None:
    request = make_request(
        method="POST", headers=[("Content-Type", "text/plain")], chunks=[b"ab", b"cd"]
    )
    assert (await request_state(request, {}, 4))["body"] == "abcd"


@pytest.mark.parametrize("kind", ["[", '{"k":'])
def test_json_bodies_are_bounded_in_depth(kind: str) -> None:
    closer = "]" if kind == "[" else "}"

    def nested(depth: int) -> bytes:
        return (kind * depth + "0" + closer * depth).encode()

    assert parse_body(nested(512), "application/json") is not None
    for depth, limit in ((513, 512), (1025, 512), (5000, 512), (4, 3)):
        with pytest.raises(BadRequest) as caught:
            parse_body(nested(depth), "application/json", limit)
        assert (caught.value.status, caught.value.message) == (
            400, f"JSON nested deeper than {limit} levels")
    # brackets inside strings do not nest; wide is not deep
    assert parse_body(b'["[[[[{{{{"]', "application/json", 1) == ["[[[[{{{{"]
    assert parse_body(b"[" + b"[1]," * 5000 + b"[]]", "application/json", 2)[-1] == []


async def test_a_body_cut_off_is_a_400_not_a_crash() -> None:
    request = make_request(method="POST", headers=[("Content-Length", "10")])
    messages: list[Message] = [{"type": "http.request", "body": b"{", "more_body": True},
                               {"type": "http.disconnect"}]

    async def receive() -> Message:
        return messages.pop(0)

    request._receive = receive
    with pytest.raises(BadRequest) as caught:  # the client hung up after one chunk
        await request_state(request, {}, MAX_BODY)
    assert (caught.value.status, caught.value.message) == (
        400, "request body incomplete: the connection was closed")


def test_a_response_too_deep_to_serialise_is_a_hard_error() -> None:
    value: Any = 1
    for _ in range(5000):
        value = [value]
    with pytest.raises(HardError, match="nested too deeply to serialise"):
        json_bytes(value)


# --- state → response ---------------------------------------------------------------------------


def header_values(response: Response, name: str) -> list[str]:
    key = name.lower().encode()
    return [value.decode() for header, value in response.raw_headers if header == key]


def test_json_response_is_compact_and_ordered() -> None:
    response = build_response({"z": 1, "a": [1.5, None, "é"]}, "application/json", None)
    assert response.status_code == 200
    assert response.body == '{"z":1,"a":[1.5,null,"é"]}'.encode()
    assert header_values(response, "content-type") == ["application/json"]
    assert header_values(response, "content-length") == [str(len(response.body))]


def test_string_state_with_json_type_is_a_quoted_string() -> None:
    response = build_response("<p>hi</p>", "application/json", 201)
    assert response.status_code == 201
    assert response.body == b'"<p>hi</p>"'


def test_unknown_content_type_is_sent_as_json() -> None:
    response = build_response({"a": 1}, "text/plain", None)
    assert response.body == b'{"a":1}'
    assert header_values(response, "content-type") == ["application/json"]


def test_html_string_and_non_string() -> None:
    html = build_response("<p>café</p>", "text/html", None)
    assert html.body == "<p>café</p>".encode()
    assert header_values(html, "content-type") == ["text/html; charset=utf-8"]
    as_json = build_response({"a": 1}, "text/html; charset=utf-8", None)
    assert as_json.body == b'{"a":1}'
    assert header_values(as_json, "content-type") == ["text/html; charset=utf-8"]


def test_svg() -> None:
    svg = build_response("<svg/>", "image/svg+xml", None)
    assert svg.body == b"<svg/>"
    assert header_values(svg, "content-type") == ["image/svg+xml"]
    assert build_response({"a": 1}, "image/svg+xml", None).body == b""


def test_png_base64_decoded_or_raw() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x01"
    response = build_response(base64.b64encode(png).decode(), "image/png", None)
    assert response.body == png
    assert header_values(response, "content-type") == ["image/png"]
    assert build_response("not base64!", "image/png", None).body == b"not base64!"
    assert build_response("ünïcode", "image/png", None).body == "ünïcode".encode()
    assert build_response(["x"], "image/png", None).body == b""


@pytest.mark.parametrize(
    ("status", "expected"),
    [(None, 200), (100, 100), (404, 404), (999, 999), (99, 500), (1000, 500), (-1, 500), (0, 500)],
)
def test_status(status: int | None, expected: int) -> None:
    assert build_response({}, "application/json", status).status_code == expected


def test_set_cookies_become_headers_and_leave_the_body() -> None:
    state = {"user": 1,
             "setCookies": ["sid=abc; Path=/; HttpOnly", "theme=dark", 7, "bad=\nvalue", "x=\x7f"]}
    response = build_response(state, "application/json", None)
    assert header_values(response, "set-cookie") == ["sid=abc; Path=/; HttpOnly", "theme=dark"]
    assert json.loads(bytes(response.body)) == {"user": 1}  # no token in the body


def test_set_cookies_need_an_array() -> None:
    response = build_response({"setCookies": "sid=abc"}, "application/json", None)
    assert header_values(response, "set-cookie") == []


def test_set_headers_replace_and_skip_invalid() -> None:
    state = {
        "setHeaders": {
            "Location": "/catalog",
            "Content-Type": "application/vnd.shelf+json",
            "X-Count": 3,
            "Bad Name": "x",
            "X-Bad-Value": "a\r\nInjected: 1",
            "X-Über": "x",
            "Content-Length": "1",
            "X-Spaced": "  padded  ",
        }
    }
    response = build_response(state, "application/json", 301)
    assert response.status_code == 301
    assert header_values(response, "location") == ["/catalog"]
    assert header_values(response, "content-type") == ["application/vnd.shelf+json"]
    assert header_values(response, "x-count") == []
    assert header_values(response, "x-bad-value") == []
    assert header_values(response, "injected") == []
    assert header_values(response, "content-length") == [str(len(response.body))]
    assert header_values(response, "x-spaced") == ["padded"]
    assert b"bad name" not in {name for name, _ in response.raw_headers}
    assert json.loads(bytes(response.body)) == {}  # headers, not body (spec/server.md §6)


def test_set_headers_can_override_html_content_type_but_not_encoding() -> None:
    response = build_response("<p>x</p>", "text/html", None)
    assert header_values(response, "content-type") == ["text/html; charset=utf-8"]
    state = {"page": 1, "setHeaders": {"content-type": "text/plain"}}
    override = build_response(state, "text/html", None)
    assert header_values(override, "content-type") == ["text/plain"]
    assert override.body == json_bytes({"page": 1})


def test_set_headers_apply_after_set_cookies() -> None:
    state = {"setCookies": ["a=1", "b=2"], "setHeaders": {"Set-Cookie": "c=3"}}
    response = build_response(state, "application/json", None)
    assert header_values(response, "set-cookie") == ["c=3"]


def test_string_state_carries_no_headers() -> None:
    response = build_response("setCookies", "text/html", None)
    assert header_values(response, "set-cookie") == []


def test_plain_status_and_headers_keys_have_no_effect() -> None:
    state = {"status": 404, "contentType": "text/html", "headers": {"X-A": "1"}}
    response = build_response(state, "application/json", None)
    assert response.status_code == 200
    assert header_values(response, "x-a") == []


def test_json_fallbacks_do_not_crash() -> None:
    assert json.loads(json_bytes({1: "a", "b": 2**70})) == {"1": "a", "b": 2**70}
    assert json_bytes("\ud800") == b'"\\ud800"'
    response = build_response({"n": 2**64}, "application/json", None)
    assert response.body == b'{"n":18446744073709551616}'


def test_error_response() -> None:
    response = error_response("Pipeline execution failed", "At app.wp:3\nboom")
    assert response.status_code == 500
    assert header_values(response, "content-type") == ["application/json"]
    assert json.loads(bytes(response.body)) == {
        "error": "Pipeline execution failed",
        "details": "At app.wp:3\nboom",
    }
    assert error_response("Too Many Requests", "slow down", 429).status_code == 429


# --- through a real ASGI round trip -------------------------------------------------------------


async def echo(request: Request) -> Response:
    try:
        state = await request_state(request, {"rest": request.path_params["rest"]}, 64)
    except BadRequest as exc:
        return exc.to_response()
    return build_response(state, "application/json", None)


@pytest.fixture
def client() -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/{rest:path}", echo, methods=["GET", "POST"])])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_round_trip(client: httpx.AsyncClient) -> None:
    async with client:
        response = await client.post(
            "/books/42?q=a+b",
            json={"title": "Dune"},
            headers={"X-Forwarded-For": "203.0.113.9", "Cookie": "sid=z"},
        )
    assert response.status_code == 200
    state = response.json()
    assert state["method"] == "POST"
    assert state["path"] == "/books/42"
    assert state["ip"] == "203.0.113.9"
    assert state["query"] == {"q": "a b"}
    assert state["params"] == {"rest": "books/42"}
    assert state["cookies"] == {"sid": "z"}
    assert state["body"] == {"title": "Dune"}


async def test_round_trip_errors(client: httpx.AsyncClient) -> None:
    async with client:
        bad = await client.post(
            "/x", content=b"{oops", headers={"Content-Type": "application/json"}
        )
        big = await client.post("/x", content=b"x" * 65, headers={"Content-Type": "text/plain"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "Bad Request"
    assert bad.json()["details"].startswith("invalid JSON body: ")
    assert big.status_code == 413
    assert big.json() == {"error": "Payload Too Large", "details": "request body exceeds 64 bytes"}
