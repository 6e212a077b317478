"""jq 1.8 numbers on Python values: literals, computed doubles, text, order, output.

libjq 1.8 keeps a number *literal* (from the input text or the program) as a decimal and
prints it canonically (`1.0`, `1E+17`, `100000000000000000001`), while arithmetic produces
*computed* doubles printed in shortest form (`1e+17`, `-0`). Here a literal is a plain `int`
or `float` (its text is `json.dumps` of the value, which is what the binding feeds libjq), and
a computed double is a `CFloat`, except that computed integers strictly inside ±2**53 become
`int`, which prints and compares identically. Two literals compare as decimals; anything
involving a computed value compares as doubles, a literal being rounded to 17 significant
digits first (libjq's `jvp_literal_number_to_double`). `to_output_number` mirrors the
binding's conversion: integral doubles become `int`, others `float`.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_EVEN, Context, Decimal

from webpipe.jqfast.errors import Fallback

MAX_SAFE = 2**53
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DOUBLE17 = Context(prec=17, rounding=ROUND_HALF_EVEN, Emax=384, Emin=-383)


class CFloat(float):
    """A computed (non-literal) double: printed by jq's dtoa, compared as a double."""

    __slots__ = ()


class LFloat(float):
    """A literal whose decimal text is not the float's repr (`1.50`, `1e2`, `-0`): libjq
    prints the text. Limited to 15 significant digits, where decimal order is double order."""

    text: str

    def __new__(cls, text: str) -> LFloat:
        self = super().__new__(cls, text)
        self.text = text
        return self


Number = int | float
NUMBER_TYPES = frozenset((int, float, CFloat, LFloat))
LITERAL_FLOATS = frozenset((float, LFloat))
FLOAT_TYPES = frozenset((float, CFloat, LFloat))


def computed(d: float) -> Number:
    """Wrap an arithmetic result; non-finite results are left to libjq."""
    if -MAX_SAFE < d < MAX_SAFE:
        return int(d) if d.is_integer() and d != 0.0 else CFloat(d)
    if d - d != 0.0:
        raise Fallback
    return CFloat(d)


def to_double(x: Number) -> float:
    """The double libjq uses for arithmetic on `x`."""
    if type(x) is int:
        return float(x) if -MAX_SAFE <= x <= MAX_SAFE else _double17(x)
    if x - x == 0.0:
        return x
    raise Fallback


def _double17(n: int) -> float:
    if not -10**300 < n < 10**300:
        raise Fallback
    return float(_DOUBLE17.plus(Decimal(n)))


def compare_numbers(a: Number, b: Number) -> int:
    """jq's number order: decimal for two literals, doubles when either is computed."""
    ta, tb = type(a), type(b)
    x: object
    y: object
    if ta is CFloat or tb is CFloat or (ta in LITERAL_FLOATS and tb in LITERAL_FLOATS):
        x, y = to_double(a), to_double(b)
    elif ta is int and tb is int:
        x, y = a, b
    elif -MAX_SAFE <= (a if ta is int else b) <= MAX_SAFE:
        x, y = (a, to_double(b)) if ta is int else (to_double(a), b)
    else:  # a large integer literal against a float literal: compare the decimals
        x, y = _decimal(a), _decimal(b)
    return (x > y) - (x < y)  # type: ignore[operator,unused-ignore]


def _decimal(x: Number) -> Decimal:
    return Decimal(x) if type(x) is int else Decimal(repr(to_double(x)))


def format_number(x: Number) -> str:
    """Number text as libjq 1.8 prints it (tostring, tojson, error messages)."""
    t = type(x)
    if t is int:
        try:
            return str(x)
        except ValueError:  # beyond Python's int-to-str digit limit
            raise Fallback from None
    if x - x != 0.0:
        raise Fallback
    if t is CFloat:
        return _dtoa(x)
    if isinstance(x, LFloat):
        return canonical_literal(x.text)
    return canonical_literal(repr(x))


def canonical_literal(text: str) -> str:
    """decNumber's to-scientific-string of a JSON number literal (`1.50`, `1E+17`)."""
    sign = "-" if text.startswith("-") else ""
    mantissa, _, exp_text = text.lstrip("+-").lower().partition("e")
    whole, _, frac = mantissa.partition(".")
    coeff = (whole + frac).lstrip("0") or "0"
    exponent = int(exp_text or 0) - len(frac)
    adjusted = exponent + len(coeff) - 1
    if exponent <= 0 and adjusted >= -6:
        point = len(coeff) + exponent
        if exponent == 0:
            return sign + coeff
        if point <= 0:
            return f"{sign}0.{'0' * -point}{coeff}"
        return f"{sign}{coeff[:point]}.{coeff[point:]}"
    rest = "." + coeff[1:] if len(coeff) > 1 else ""
    return f"{sign}{coeff[0]}{rest}E{'+' if adjusted >= 0 else '-'}{abs(adjusted)}"


def _dtoa(d: float) -> str:
    """jq's `jvp_dtoa_fmt`: shortest digits, exponent form outside [1e-4, 1e(n+15))."""
    if d == 0.0:
        return "-0" if math.copysign(1.0, d) < 0 else "0"
    sign = "-" if d < 0 else ""
    digits, decpt = _shortest_digits(abs(float(d)))
    if decpt <= -4 or decpt > len(digits) + 15:
        rest = "." + digits[1:] if len(digits) > 1 else ""
        exp = decpt - 1
        return f"{sign}{digits[0]}{rest}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if decpt <= 0:
        return f"{sign}0.{'0' * -decpt}{digits}"
    if decpt >= len(digits):
        return sign + digits + "0" * (decpt - len(digits))
    return f"{sign}{digits[:decpt]}.{digits[decpt:]}"


def _shortest_digits(d: float) -> tuple[str, int]:
    """Shortest round-trip digits of `d > 0` and the decimal point position."""
    mantissa, _, exp_text = repr(d).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    decpt = len(whole) + int(exp_text or 0)
    stripped = digits.lstrip("0")
    decpt -= len(digits) - len(stripped)
    return stripped.rstrip("0"), decpt


def literal_value(text: str) -> Number | None:
    """The Python value of a program or `tonumber` literal, keeping libjq's text when the
    value's own repr would print differently; None when that cannot be done exactly."""
    # (int() refuses 4300 digits; a literal that long is no exact integer for libjq anyway)
    if len(text) <= 400 and _INTEGER.fullmatch(text) and canonical_literal(text) == str(int(text)):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        return None
    if value - value != 0.0:
        return None
    if canonical_literal(text) == canonical_literal(repr(value)):
        return value
    digits = text.lstrip("+-").lower().partition("e")[0].replace(".", "").lstrip("0")
    return LFloat(text) if len(digits) <= 15 else None


def negate_literal(x: float) -> float:
    """decNumber minus of a literal float: exact, and zero comes out positive."""
    if type(x) is LFloat:
        text = x.text.lstrip("+")
        if x == 0.0:
            return LFloat(text.lstrip("-"))
        return LFloat(text[1:] if text.startswith("-") else "-" + text)
    return 0.0 if x == 0.0 else -x


def abs_literal(x: float) -> float:
    if type(x) is LFloat:
        return LFloat(x.text.lstrip("+-"))
    return abs(x)


def to_output_number(x: Number) -> Number:
    """What the `jq` binding returns for this number: int when integral, else float."""
    if type(x) is int and -MAX_SAFE <= x <= MAX_SAFE:
        return x
    d = to_double(x)
    if d.is_integer():
        return int(d)
    return float(d)
