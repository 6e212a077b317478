"""The `/health` criterion of issue 22 as the hostile tests of request input, connections,
upstreams and static files assert it, with slack for a shared 2-core machine."""

from __future__ import annotations

import statistics

PROBE_BUDGET_S = 0.1  # the bound for a /health answer
STALL_S = 0.5  # no single probe may come near a stall (before the fixes: > 1 s)


def assert_responsive(latencies: list[float]) -> None:
    """Typical probes within the budget, none stalled. The first probe also opens its
    connection, and other test runs share the CPUs, so a strict maximum of 100 ms would
    fail on load alone; a blocked loop fails both checks."""
    assert latencies, "no probe ran"
    assert statistics.median(latencies) < PROBE_BUDGET_S, latencies
    assert max(latencies) < STALL_S, latencies
