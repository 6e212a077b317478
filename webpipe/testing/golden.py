"""Golden files for `webpipe test --golden DIR`: each test's response, recorded once and
compared on every later run (`--update` rewrites them, and removes the files of tests
that no longer exist).

A golden file is `DIR/<describe>/<it>.json` holding the status, the content type, the
response headers the pipeline sets (`setHeaders`, `setCookies`) and the body. A mismatch
fails the test with a unified diff of the two files' text.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from webpipe.testing.assertions import TestOutcome


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-").lower() or "unnamed"


def golden_path(directory: Path, describe: str, name: str) -> Path:
    return directory / slug(describe) / f"{slug(name)}.json"


def snapshot(outcome: TestOutcome) -> str:
    body = outcome.output
    record: dict[str, Any] = {"status": outcome.status, "contentType": outcome.content_type}
    if isinstance(body, dict):
        headers = {k: v for k, v in (body.get("setHeaders") or {}).items()}
        if body.get("setCookies"):
            headers["Set-Cookie"] = body["setCookies"]
        if headers:
            record["headers"] = headers
    record["body"] = body
    return json.dumps(record, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def check_golden(outcome: TestOutcome, path: Path, update: bool) -> tuple[str | None, bool]:
    """(failure message or None, whether the file was written)."""
    actual = snapshot(outcome)
    if update or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return None, True
    expected = path.read_text(encoding="utf-8")
    if expected == actual:
        return None, False
    diff = "".join(difflib.unified_diff(expected.splitlines(keepends=True),
                                        actual.splitlines(keepends=True),
                                        fromfile=str(path), tofile="actual"))
    return f"golden file differs (run with --update to accept):\n{diff}", False


def orphans(directory: Path, names: Iterable[tuple[str, str]]) -> list[Path]:
    """Golden files under `directory` that no test (describe, it) of the program owns: a
    test was renamed or removed, and its old response would otherwise lie there unseen."""
    if not directory.is_dir():
        return []
    owned = {golden_path(directory, describe, name) for describe, name in names}
    return sorted(p for p in directory.glob("*/*.json") if p not in owned)


def remove(paths: Iterable[Path]) -> None:
    """Delete orphan golden files, then their describe folders if that left them empty."""
    for path in paths:
        path.unlink()
        if not any(path.parent.iterdir()):
            path.parent.rmdir()
