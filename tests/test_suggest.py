"""did-you-mean: the closest known name, or none when nothing is close."""

from __future__ import annotations

from webpipe.suggest import closest, did_you_mean


def test_a_near_name_is_suggested() -> None:
    assert did_you_mean("jqq", ["jq", "pg", "lua"]) == "; did you mean 'jq'?"
    assert closest("hots", {"host", "port"}) == "host"


def test_case_alone_is_a_match() -> None:
    assert closest("PG", ["pg", "jq"]) == "pg"


def test_nothing_close_gives_nothing() -> None:
    assert did_you_mean("zzzzzz", ["jq", "pg"]) == ""
    # a shared prefix alone is not enough (difflib's 0.6 would offer breakerUrl)
    assert closest("breakerLimit", ["breakerUrl", "breakerOpenMs"]) is None


def test_the_name_itself_is_not_offered() -> None:
    assert closest("jq", ["jq"]) is None
