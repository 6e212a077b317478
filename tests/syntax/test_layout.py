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


def test_a_step_left_of_an_empty_branch_head_is_read_into_it() -> None:
    text = "GET /a\n  |> result\n    ok(200):\n  |> jq: `.`\n"
    [wrong] = misplaced_steps(parse(Source("app.wp", text)))
    assert wrong.step.span.line == 4 and "`ok(200)` branch" in wrong.block


def test_every_repository_file_is_laid_out_as_it_parses() -> None:
    root = Path(__file__).resolve().parents[2]
    files = [*root.glob("examples/**/*.wp"), *root.glob("tests/wp/**/*.wp"),
             *root.glob("tests/golden/fmt/*.wp"), *root.glob("tests/golden/parse/*.wp")]
    assert len(files) > 20
    for path in files:
        program = parse(Source(path.name, path.read_text()))
        assert misplaced_steps(program) == [], path


def test_the_last_branch_of_an_if_without_end_runs_to_the_end() -> None:
    text = ("GET /a\n  |> if\n    |> jq: `.a`\n    then:\n      |> jq: `1`\n    else:\n"
            "      |> jq: `2`\n  |> jq: `3`\n")
    [wrong] = misplaced_steps(parse(Source("app.wp", text)))
    assert wrong.step.span.line == 8 and wrong.block == "the `else:` branch of the `if` at line 2"
    closed = text.replace("  |> jq: `3`", "    end\n  |> jq: `3`")
    assert misplaced_steps(parse(Source("app.wp", closed))) == []
