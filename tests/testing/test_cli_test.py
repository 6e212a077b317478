"""`webpipe test` as users run it (subprocesses): failures a developer can act on (the
assertion's `file:line`, expected and actual under the reference's `[FAIL]` line), `-x`,
`-k` that selects nothing, and golden files whose test is gone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

APP = '''GET /hi/:who
  |> jq: `{ hi: .params.who, n: 3, tags: ["a", "b"] }`

pipeline note =
  |> jq: `{ noted: true }`

GET /noted
  |> pipeline: note

describe "greeting"
  it "says hi"
    when calling GET /hi/ann
    then status is 200
    and output `.hi` equals "bob"

  it "counts"
    when calling GET /hi/ann
    then output `.n` equals 3

describe "other"
  it "fails too"
    when calling GET /hi/x
    then output `.n` equals 4
'''


def webpipe(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "webpipe", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, check=False, timeout=120)


def write(tmp_path: Path, text: str = APP, name: str = "app.wp") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_failure_shows_where_and_both_values_under_the_reference_line(tmp_path: Path) -> None:
    done = webpipe("test", write(tmp_path), cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0] == "Test Results: 1/3 passed (2 failed)"
    assert lines[1:5] == ["[FAIL] greeting :: says hi -> output mismatch",
                          '  app.wp:14: and output `.hi` equals "bob"',
                          '    expected: "bob"',
                          '    actual:   "ann"']
    assert lines[5] == "[PASS] greeting :: counts"
    assert lines[6:] == ["[FAIL] other :: fails too -> output mismatch",
                         "  app.wp:23: then output `.n` equals 4",
                         "    expected: 4", "    actual:   3"]


def test_json_report_lists_each_failed_assertion(tmp_path: Path) -> None:
    done = webpipe("test", "--json", write(tmp_path), cwd=tmp_path)
    first = json.loads(done.stdout)["tests"][0]
    assert first["failures"] == [{"message": "output mismatch", "file": "app.wp", "line": 14,
                                  "expected": "bob", "actual": "ann"}]


def test_a_long_value_is_pretty_printed_and_cut(tmp_path: Path) -> None:
    app = APP.replace('{ hi: .params.who, n: 3, tags: ["a", "b"] }',
                      '{ hi: .params.who, n: 3, rows: [range(40) | { id: . }] }')
    done = webpipe("test", "-k", "counts", write(tmp_path, app.replace(
        "then output `.n` equals 3", "then output `.rows` equals []")), cwd=tmp_path)
    lines = done.stdout.splitlines()
    assert lines[3:5] == ["    expected: []", "    actual:   ["]
    assert lines[-1] == "              ... (92 more lines)"
    assert len(lines) == 3 + 2 + 30


def test_exitfirst_stops_at_the_first_failure(tmp_path: Path) -> None:
    other = write(tmp_path, APP, "second.wp")
    done = webpipe("test", "-x", write(tmp_path), other, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == "Test Results: 0/1 passed (1 failed)"
    assert "[FAIL] greeting :: says hi" in done.stdout
    assert "counts" not in done.stdout and "second" not in done.stdout
    assert "stopped at the first failure (-x): 5 of 6 selected test(s) not run" in done.stderr
    passing = webpipe("test", "--exitfirst", "-k", "counts", write(tmp_path), cwd=tmp_path)
    assert passing.returncode == 0 and "stopped" not in passing.stderr


def test_k_that_selects_nothing_exits_5_and_says_so(tmp_path: Path) -> None:
    done = webpipe("test", "-k", "nosuch", write(tmp_path), cwd=tmp_path)
    assert done.returncode == 5
    assert done.stdout == "Test Results: 0/0 passed (0 failed)\n"
    assert "no test matches -k 'nosuch'" in done.stderr
    selected = webpipe("test", "-k", "COUNTS", write(tmp_path), cwd=tmp_path)
    assert (selected.returncode, selected.stdout) == (
        0, "Test Results: 1/1 passed (0 failed)\n[PASS] greeting :: counts\n")


def test_a_file_without_tests_still_passes_without_k(tmp_path: Path) -> None:
    done = webpipe("test", write(tmp_path, "GET /a\n  |> jq: `{}`\n"), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "Test Results: 0/0 passed (0 failed)\n")


def test_golden_files_of_removed_tests_are_reported_then_removed(tmp_path: Path) -> None:
    app, golden = write(tmp_path), tmp_path / "golden"
    assert webpipe("test", "-k", "counts", app, "--golden", golden).returncode == 0
    assert [p.relative_to(golden).as_posix() for p in golden.rglob("*.json")] == [
        "greeting/counts.json"]
    write(tmp_path, APP.replace('it "counts"', 'it "counts up"'))
    done = webpipe("test", "-k", "counts", app, "--golden", golden)
    assert done.returncode == 1  # every test passed, but a golden file is orphaned
    assert "[PASS] greeting :: counts up" in done.stdout
    assert "1 golden file(s) belong to no test" in done.stderr
    assert f"  {golden / 'greeting' / 'counts.json'}" in done.stderr
    assert (golden / "greeting" / "counts.json").exists()
    updated = webpipe("test", "-k", "counts", app, "--golden", golden, "--update")
    assert updated.returncode == 0
    assert "removed 1 golden file(s) of tests that no longer exist" in updated.stderr
    assert sorted(p.relative_to(golden).as_posix() for p in golden.rglob("*")) == [
        "greeting", "greeting/counts-up.json"]


def test_an_emptied_describe_folder_goes_with_its_last_file(tmp_path: Path) -> None:
    app, golden = write(tmp_path), tmp_path / "golden"
    webpipe("test", "-k", "other", app, "--golden", golden)
    assert (golden / "other" / "fails-too.json").exists()
    write(tmp_path, APP.replace('describe "other"', 'describe "others"'))
    assert webpipe("test", "-k", "zzz", app, "--golden", golden, "--update").returncode == 5
    assert not (golden / "other").exists()
