"""`webpipe test --golden DIR`: record, compare with a diff, `--update` rewrites."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from webpipe.testing.main import run_test_files

APP = '''
GET /hi/:who
  |> jq: `{ hi: .params.who, setHeaders: { "X-Who": .params.who } }`

describe "greeting"
  it "says hi"
    when calling GET /hi/ann
    then status is 200
'''


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app.wp"
    path.write_text(APP)
    return path


def test_records_then_passes(app: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    golden = tmp_path / "golden"
    assert run_test_files([app], golden=golden) == 0
    recorded = json.loads((golden / "greeting" / "says-hi.json").read_text())
    assert recorded == {"status": 200, "contentType": "application/json",
                        "headers": {"X-Who": "ann"},
                        "body": {"hi": "ann", "setHeaders": {"X-Who": "ann"}}}
    assert "1 golden file(s) written" in capsys.readouterr().err
    assert run_test_files([app], golden=golden) == 0


def test_a_change_fails_with_a_diff_and_update_accepts_it(
        app: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    golden = tmp_path / "golden"
    assert run_test_files([app], golden=golden) == 0
    app.write_text(APP.replace("hi: .params.who", "hi: (.params.who + \"!\")"))
    capsys.readouterr()
    assert run_test_files([app], golden=golden) == 1
    out = capsys.readouterr().out
    assert "[FAIL] greeting :: says hi -> golden file differs" in out
    assert '-    "hi": "ann",' in out and '+    "hi": "ann!",' in out
    assert run_test_files([app], golden=golden, update=True) == 0
    assert run_test_files([app], golden=golden) == 0
