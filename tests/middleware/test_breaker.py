"""The fetch circuit breaker's state machine (spec/fetch.md §Circuit breakers): the window
of failures, the one probe of the half-open state, what a cancelled probe means, and which
payloads count as failures. The HTTP behaviour is in tests/executor/test_fanout_http.py."""

from __future__ import annotations

import asyncio

import pytest

from webpipe.middleware.breaker import (
    BreakerConfig,
    Breakers,
    open_breakers,
    upstream_failed,
    upstream_host,
)

URL = "http://127.0.0.1:9/x"
HOST = "127.0.0.1:9"


async def opened(open_ms: int = 50) -> Breakers:
    breakers = Breakers(BreakerConfig(max_errors=2, interval_ms=10_000, open_ms=open_ms))
    for _ in range(2):
        probe, refused = await breakers.admit(HOST, URL)
        assert (probe, refused) == (False, None)
        await breakers.settle(HOST, False, True)
    return breakers


async def test_failures_within_the_interval_open_the_breaker() -> None:
    breakers = await opened()
    probe, refused = await breakers.admit(HOST, URL)
    assert not probe and refused is not None
    error = refused["errors"][0]
    assert error["type"] == "circuitOpen" and error["host"] == HOST
    assert "after 2 failures within 10000 ms (next probe in" in error["message"]
    assert (await breakers.admit("other:1", "http://other:1/")) == (False, None)  # per host


async def test_old_failures_leave_the_window() -> None:
    breakers = Breakers(BreakerConfig(max_errors=2, interval_ms=30, open_ms=1000))
    await breakers.settle(HOST, False, True)
    await asyncio.sleep(0.05)
    await breakers.settle(HOST, False, True)
    assert (await breakers.admit(HOST, URL)) == (False, None)


async def test_one_probe_at_a_time_and_a_cancelled_probe_proves_nothing() -> None:
    breakers = await opened()
    await asyncio.sleep(0.07)
    assert (await breakers.admit(HOST, URL)) == (True, None)  # the probe
    _, refused = await breakers.admit(HOST, URL)  # while it runs
    assert refused is not None and "a probe call is in flight" in refused["errors"][0]["message"]
    await breakers.settle(HOST, True, None)  # cancelled
    assert (await breakers.admit(HOST, URL)) == (True, None)  # the next call probes
    await breakers.settle(HOST, True, False)
    assert (await breakers.admit(HOST, URL)) == (False, None)  # closed
    assert breakers.hosts[HOST].state == "closed"


def test_what_counts_as_an_upstream_failure() -> None:
    assert upstream_failed({"errors": [{"type": "networkError"}]})
    assert upstream_failed({"errors": [{"type": "timeoutError"}]})
    assert upstream_failed({"errors": [{"type": "httpError", "status": 503}]})
    assert not upstream_failed({"errors": [{"type": "httpError", "status": 404}]})
    assert not upstream_failed({"response": {}, "status": 200, "headers": {}})
    assert upstream_host("https://user:pw@API.example:8443/a?b") == "api.example:8443"


def test_breakers_are_off_by_default_and_in_process_without_redis(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert open_breakers(None) is None
    assert open_breakers({"breakerIntervalMs": 5}) is None
    assert isinstance(open_breakers({"breakerMaxErrors": 3}), Breakers)
