"""The request object a `when calling` test builds (spec/testing.md §4.1).

Decisions (spec/testing.md §4.1 [Decide]/[Improve], recorded in spec/testing.md of this
project): header names are lower-cased and scalar values stringified, as the live server
would deliver them; query values are percent-decoded like the server's.
"""

from __future__ import annotations

import json
from typing import Any

from webpipe.http import coerce_number, decode_param, parse_query


def _header_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, dict | list):
        return ""
    return json.dumps(value)


def build_test_request(method: str, path: str, query: str, params: dict[str, str], *,
                       headers: Any, cookies: Any, body: Any) -> dict[str, Any]:
    query_obj = parse_query(query)
    params_obj = {k: coerce_number(decode_param(v)) for k, v in params.items()}
    header_obj = ({str(k).lower(): _header_text(v) for k, v in headers.items()}
                  if isinstance(headers, dict) else {})
    cookie_obj = ({str(k): _header_text(v) for k, v in cookies.items()}
                  if isinstance(cookies, dict) else {})
    return {
        "method": method,
        "path": path,
        "query": query_obj,
        "params": params_obj,
        "headers": header_obj,
        "cookies": cookie_obj,
        "body": body,
        "content_type": "application/json",
        "originalRequest": {"method": method, "params": dict(params_obj),
                            "query": dict(query_obj)},
    }
