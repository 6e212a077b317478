"""A test's own typo (a `when calling` no route matches, a `when executing` target that does
not exist) is a `check` error but does not stop `serve` (spec/decisions.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from webpipe.check import check_file
from webpipe.errors import CheckError
from webpipe.serve_watch import load_checked

APP = '''GET /users/:id
  |> jq: `{ id: .params.id }`

describe "users"
  it "has a typo in its path"
    when calling GET /user/1
    then status is 200
  it "runs a pipeline that does not exist"
    when executing pipeline nosuch
    then output equals 1
'''


def test_check_refuses_but_serve_warns(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    app = tmp_path / "app.wp"
    app.write_text(APP)
    errors = [(d.code, d.span.line if d.span else 0) for d in check_file(app)
              if d.severity == "error"]
    assert errors == [("unknown-route", 6), ("unknown-test-target", 9)]
    served = load_checked(app)
    assert served.env.index.main.path == app
    printed = capsys.readouterr().err
    assert "app.wp:6:10: warning: no route matches GET /user/1" in printed
    assert "app.wp:9:10: warning: no pipeline 'nosuch'" in printed


def test_serve_still_refuses_a_route_error(tmp_path: Path) -> None:
    app = tmp_path / "app.wp"
    app.write_text(APP.replace("|> jq:", "|> jqq:"))
    with pytest.raises(CheckError, match="did you mean 'jq'"):
        load_checked(app)
