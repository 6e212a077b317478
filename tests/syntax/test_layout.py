"""A step indented as if outside the block it is parsed into: `check` warns, `fmt` refuses
to move it into that block."""

from __future__ import annotations

from pathlib import Path

import pytest

from webpipe.errors import CheckError
from webpipe.source import Source
from webpipe.syntax.fmt import format_file, format_source
from webpipe.syntax.layout import misplaced_steps
from webpipe.syntax.parser import parse

AFTER_RESULT = """\
GET /a
  |> result
    ok(200):
      |> jq: `{ ok: true }`
  |> jq: `{ after: true }`
"""


def test_a_route_step_after_result_is_read_into_the_last_branch() -> None:
    [wrong] = misplaced_steps(parse(Source("app.wp", AFTER_RESULT)))
    assert wrong.step.span.line == 5
    assert wrong.block == "the `ok(200)` branch of the `result` at line 2"


def test_fmt_refuses_rather_than_moving_the_step(tmp_path: Path) -> None:
    app = tmp_path / "app.wp"
    app.write_text(AFTER_RESULT)
    with pytest.raises(CheckError) as info:
        format_file(app)
    assert info.value.span is not None and info.value.span.line == 5
    assert "not formatted: this step is part of the `ok(200)` branch" in info.value.message
    assert app.read_text() == AFTER_RESULT


def test_steps_indented_with_their_block_are_formatted() -> None:
    text = AFTER_RESULT.replace("\n  |> jq: `{ after", "\n      |> jq: `{ after")
    assert misplaced_steps(parse(Source("app.wp", text))) == []
    assert format_source(Source("app.wp", text)) == text


def test_a_step_after_end_is_outside_the_block() -> None:
    text = "GET /a\n  |> foreach items\n    |> jq: `.`\n  end\n  |> jq: `.`\n"
    assert misplaced_steps(parse(Source("app.wp", text))) == []
