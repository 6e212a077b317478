"""JSON values as handlebars-rust 6 sees them: rendering, escaping, truthiness, comparison.

Mirrors `src/json/value.rs` (render, truthiness) and `src/helpers/helper_extras.rs` (the
comparison helpers) of handlebars-rust, on Python JSON values (`None`, `bool`, `int`,
`float`, `str`, `list`, `dict`). Numbers print like `serde_json` (integers as is, floats in
Ryu's shortest form: `2.0`, `1e21`, `1e-7`); equality distinguishes integers from floats
because `serde_json::Number` does.
"""

from __future__ import annotations

import math
import re
import sys
from typing import Any

JSON = Any

ESCAPES = {
    ord("&"): "&amp;",
    ord("<"): "&lt;",
    ord(">"): "&gt;",
    ord('"'): "&quot;",
    ord("'"): "&#x27;",
    ord("`"): "&#x60;",
    ord("="): "&#x3D;",
}
NEEDS_ESCAPE = re.compile("[&<>\"'`=]")
# serde_json keeps integers in i64/u64; anything wider is a float there.
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?[ \t\n\r]*")


def escape_html(text: str) -> str:
    """handlebars-rust's `html_escape`: `& < > " ' ` =` become entities."""
    if NEEDS_ESCAPE.search(text) is None:  # far cheaper than translate() on clean text
        return text
    return text.translate(ESCAPES)


def render_value(value: JSON) -> str:
    """The text `{{value}}` prints before escaping (`JsonRender::render`)."""
    if type(value) is int and _INT_MIN <= value <= _INT_MAX:  # the common case first
        return str(value)
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return format_number(value)
    if isinstance(value, list):
        return "[" + "".join(render_value(item) + ", " for item in value) + "]"
    if isinstance(value, dict):
        return "[object]"
    return str(value)


def render_escaped(value: JSON) -> str:
    """`{{value}}` of a value that is not a string: rendered, then escaped (an integer's
    digits never need it)."""
    if type(value) is int and _INT_MIN <= value <= _INT_MAX:
        return str(value)
    return escape_html(render_value(value))


def format_number(value: int | float) -> str:
    """`serde_json::Number` display: integers verbatim, floats via Ryu."""
    if isinstance(value, int) and _INT_MIN <= value <= _INT_MAX:
        return str(value)
    return format_float(float(value))


def format_float(value: float) -> str:
    """Ryu's `format_finite`: shortest digits; decimal for 1e-5 <= |x| < 1e16."""
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    digits, exponent = _shortest_digits(abs(value))
    return sign + _ryu_layout(digits, exponent)


def _shortest_digits(value: float) -> tuple[str, int]:
    """(digits, k) with value == int(digits) * 10**k and no trailing zeros in digits."""
    mantissa, _, exp_text = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    exponent = int(exp_text or "0") - len(fraction)
    stripped = digits.rstrip("0")
    return stripped, exponent + len(digits) - len(stripped)


def _ryu_layout(digits: str, k: int) -> str:
    length = len(digits)
    point = length + k  # position of the decimal point relative to the first digit
    if k >= 0 and point <= 16:
        return digits + "0" * k + ".0"
    if 0 < point <= 16:
        return digits[:point] + "." + digits[point:]
    if -5 < point <= 0:
        return "0." + "0" * -point + digits
    if length == 1:
        return f"{digits}e{point - 1}"
    return f"{digits[0]}.{digits[1:]}e{point - 1}"


def is_truthy(value: JSON, include_zero: bool = False) -> bool:
    """`JsonTruthy::is_truthy`: `false null 0 "" [] {}` are falsy (so is a subnormal)."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, int):
        return include_zero or value != 0
    if isinstance(value, float):
        if include_zero:
            return not math.isnan(value)
        return math.isfinite(value) and abs(value) >= sys.float_info.min
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return bool(value)


def json_eq(a: JSON, b: JSON) -> bool:
    """`serde_json::Value` equality: `1 != 1.0`, `true != 1`, deep for arrays/objects."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_eq(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_eq(v, b[k]) for k, v in a.items())
    return type(a) is type(b) and bool(a == b)


def compare_json(a: JSON, b: JSON) -> int | None:
    """Ordering used by `gt`/`gte`/`lt`/`lte`: -1, 0, 1, or None when incomparable.

    Numbers compare by value, strings by code point, booleans false < true; a number and a
    string compare when the string is a JSON number (`(gt 53 "35")` is true).
    """
    if _is_number(a) and isinstance(b, str):
        b = parse_json_number(b)
    elif isinstance(a, str) and _is_number(b):
        a = parse_json_number(a)
    if (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str)):
        return int(a > b) - int(a < b)
    if isinstance(a, bool) and isinstance(b, bool):
        return int(a) - int(b)
    return None


def parse_json_number(text: str) -> int | float | None:
    """`serde_json::Number::from_str`: a JSON number (trailing whitespace allowed), else None."""
    match = _JSON_NUMBER.fullmatch(text)
    if match is None:
        return None
    body = text.rstrip(" \t\n\r")
    return float(body) if match.group(1) or match.group(2) else int(body)


def json_len(value: JSON) -> int:
    """The `len` helper: items of an array/object, UTF-8 bytes of a string, else 0."""
    if isinstance(value, list | dict):
        return len(value)
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    return 0


def _is_number(value: JSON) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
