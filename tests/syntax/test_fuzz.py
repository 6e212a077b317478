"""Fuzzing the parser: mutated valid files give a WebpipeError or a Program, never
another exception (or a hang: Hypothesis' deadline)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webpipe.errors import WebpipeError
from webpipe.source import Source
from webpipe.syntax import nodes as n
from webpipe.syntax.parser import parse

SEEDS = [p.read_text() for p in sorted((Path(__file__).parent.parent / "golden" / "parse")
                                       .glob("*.wp"))]
ALPHABET = "|>`\"#@!():,.{}[]=\n \tabcdefGETPOSTendthen:else:case $*/0123456789"


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = draw(st.text(alphabet=ALPHABET, min_size=1, max_size=6))
        if op == "insert":
            text = text[:pos] + chunk + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + len(chunk):]
        else:
            text = text[:pos] + chunk + text[pos + len(chunk):]
    return text


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_parser_only_raises_its_own_errors(text: str) -> None:
    try:
        program = parse(Source.from_text("fuzz.wp", text))
    except WebpipeError as exc:
        assert exc.span is not None
        assert str(exc).startswith("fuzz.wp:")
    else:
        assert isinstance(program, n.Program)
