"""`fmt` keeps what a file means: a test that passes passes after formatting (mock order
around `when calling`), and comments before `then:`/`else:`/`default:` are stable."""

from __future__ import annotations

from pathlib import Path

from tests.test_cli import webpipe
from webpipe.source import Source
from webpipe.syntax.fmt import format_source

APP = """GET /who
  |> jq: `{ from: "real" }`

describe "who"
  it "uses the later mock"
    and mock jq returning `{ "from": "first" }`
    when calling GET /who
    with mock jq returning `{ "from": "second" }`
    then output `.from` equals "second"
"""

BRANCHES = """GET /b
  |> if
    |> jq: `.query.x`
    # why
    then:
      |> jq: `1`
  end
  |> dispatch
    case @flag(x):
      |> jq: `2`
    # fallback
    default:
      |> jq: `3`
  end
"""


def test_a_passing_test_still_passes_after_fmt(tmp_path: Path) -> None:
    app = tmp_path / "app.wp"
    app.write_text(APP)
    assert webpipe("test", str(app), cwd=tmp_path).returncode == 0
    assert webpipe("fmt", str(app), cwd=tmp_path).returncode == 0
    formatted = app.read_text()
    assert formatted.index('"first"') < formatted.index("when calling")
    assert formatted.index("when calling") < formatted.index('"second"')
    done = webpipe("test", str(app), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_comments_before_branch_keywords_are_a_fixed_point() -> None:
    text = BRANCHES
    for _ in range(3):
        text = format_source(Source.from_text("b.wp", text))
        assert text == BRANCHES
