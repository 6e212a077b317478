"""Shared pytest configuration: the golden-file update flag, and the `slow`/`db` markers."""

from __future__ import annotations

import pytest

from tests import markers
from tests.templating.differential import closures_agree  # noqa: F401 (a fixture)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true",
                     help="rewrite golden files from the current output")


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-goldens"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `slow` and `db` tests from the tables in tests/markers.py, so the fast subset
    is `pytest -m "not slow and not db"` without a marker in every test file."""
    for item in items:
        name = getattr(item, "originalname", item.name)
        if item.nodeid.startswith(markers.SLOW_PATHS) or name in markers.SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
        if (item.nodeid.startswith(markers.DB_PATHS) or name in markers.DB_TESTS
                or markers.DB_FIXTURES.intersection(getattr(item, "fixturenames", ()))):
            item.add_marker(pytest.mark.db)
