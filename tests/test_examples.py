"""Every example app passes its own tests, and its responses match its golden files
(`webpipe test examples/X/app.wp --golden examples/X/golden`; `--update` to re-record)."""

from __future__ import annotations

from pathlib import Path

import pytest

from webpipe.check import check_file
from webpipe.syntax.fmt import format_file
from webpipe.testing.main import run_test_files

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
WITH_GOLDENS = sorted(p.parent for p in EXAMPLES.glob("*/golden"))


@pytest.mark.parametrize("example", WITH_GOLDENS, ids=[p.name for p in WITH_GOLDENS])
def test_example_matches_its_goldens(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_test_files([example / "app.wp"], golden=example / "golden") == 0, \
        capsys.readouterr().out
    assert "golden file(s) written" not in capsys.readouterr().err


@pytest.mark.parametrize("app", sorted(EXAMPLES.glob("*/app.wp")),
                         ids=lambda p: p.parent.name)
def test_example_checks_clean(app: Path) -> None:
    assert [d.render() for d in check_file(app) if d.severity == "error"] == []


def test_there_are_goldens() -> None:
    assert len(WITH_GOLDENS) >= 3


@pytest.mark.parametrize("app", sorted(EXAMPLES.glob("*/app.wp")),
                         ids=lambda p: p.parent.name)
def test_example_is_formatted(app: Path) -> None:
    """`webpipe fmt --check` passes on every example (also run by .ci/run)."""
    assert not format_file(app, write=False), f"run `webpipe fmt {app}`"


def test_no_example_hard_codes_the_default_port() -> None:
    """An example that calls itself finds its own address (comments may show the URL)."""
    for app in EXAMPLES.glob("*/app.wp"):
        code = [line for line in app.read_text().splitlines() if not line.startswith("#")]
        assert not [line for line in code if "7770" in line], app
