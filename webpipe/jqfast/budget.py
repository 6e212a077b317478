"""The fast path's run budget: work units counted in every loop that can run long.

A fast-path program has no recursion and no unbounded loop; what can make a run long (or
large) is how much it iterates and builds: `range`, `.[]` and the builtins over arrays,
`,` products, string and array building, `tojson`, comparisons and the output copy. Each
of those calls `spend(units)` with roughly one unit per element touched (strings count one
unit per `STRING_BYTES_PER_UNIT` characters) before or while doing the work. Every
`CHECK_EVERY` units the clock is read: a run past its deadline, or past `max_units` in all
(a memory proxy: a unit is an element or ~16 characters built), raises `OverBudget`, a
`Fallback`, so the caller abandons the run (a jq program has no effects) and reruns it on
libjq in a sandbox worker under the real time and memory budget.

The state is module-global and set by `begin()` for each run: fast-path runs happen on the
event loop thread, one at a time (a run never starts another).
"""

from __future__ import annotations

import time

from webpipe.jqfast.errors import Fallback

CHECK_EVERY = 1024  # units between clock reads
STRING_BYTES_PER_UNIT = 16
UNBOUNDED = float("inf")

_left = CHECK_EVERY  # units until the next check
_spent_checks = 0  # checks so far in this run
_max_checks = UNBOUNDED
_deadline = UNBOUNDED


class OverBudget(Fallback):
    """The run went past its inline budget: rerun it where it can be stopped."""


def begin(budget_s: float = UNBOUNDED, max_units: float = UNBOUNDED) -> None:
    """Start a run's budget: `budget_s` seconds from now, and at most
    `max_units` units in all (both unbounded for tooling runs)."""
    global _left, _spent_checks, _max_checks, _deadline
    _left = CHECK_EVERY
    _spent_checks = 0
    _max_checks = max_units / CHECK_EVERY
    _deadline = budget_s if budget_s == UNBOUNDED else time.perf_counter() + budget_s


def spend(units: int) -> None:
    """Count `units` of work; raises `OverBudget` past the run's budget."""
    global _left
    _left -= units
    if _left < 0:
        _check()


def spend_text(length: int) -> None:
    """Count building or reading `length` characters."""
    spend(length // STRING_BYTES_PER_UNIT)


def _check() -> None:
    global _left, _spent_checks
    _spent_checks += 1 + (-_left) // CHECK_EVERY  # a big charge counts as several checks
    _left = CHECK_EVERY
    if _spent_checks > _max_checks or time.perf_counter() > _deadline:
        raise OverBudget
