"""The fast path's run budget: work units counted in every loop that can run long.

A fast-path program has no recursion and no unbounded loop; what can make a run long (or
large) is how much it iterates and builds: `range`, `.[]` and the builtins over arrays,
`,` products, string and array building, `tojson`, comparisons and the output copy. Each
of those calls `spend(units)` with roughly one unit per element touched (strings count one
unit per `STRING_BYTES_PER_UNIT` characters) before or while doing the work. The first check
comes after `FIRST_CHECK` units and starts the clock; later ones come every `CHECK_EVERY`
units. A run past its time budget, or past `max_units` in all (a memory proxy: a unit is an
element or ~16 characters built), or about to start one operation over `SINGLE_MAX` units
(charges come before the work), raises `OverBudget`, a `Fallback`, so the caller abandons
the run (a jq program has no effects) and reruns it on libjq in a sandbox worker under the
real time and memory budget. A short run (the common route program) never reads the clock:
`begin` is a few stores.

The state is module-global and set by `begin()` for each run: fast-path runs happen on the
event loop thread, one at a time (a run never starts another).
"""

from __future__ import annotations

import time

from webpipe.jqfast.errors import Fallback

FIRST_CHECK = 256  # units before the first check (which starts the clock)
CHECK_EVERY = 1024  # units between later checks
# one operation charged more than this (an array of 64k elements copied or sorted, ~1 MB of
# text built or printed) is not started inline: a single C-level call cannot be stopped
SINGLE_MAX = 65_536
STRING_BYTES_PER_UNIT = 16
UNBOUNDED = float("inf")

_left = FIRST_CHECK  # units until the next check
_spent = 0  # units counted up to the last check
_budget_s = UNBOUNDED
_max_units = UNBOUNDED
_deadline = 0.0  # 0: the clock has not started


class OverBudget(Fallback):
    """The run went past its inline budget: rerun it where it can be stopped."""


def begin(budget_s: float = UNBOUNDED, max_units: float = UNBOUNDED) -> None:
    """Start a run's budget: about `budget_s` seconds of work, and at most `max_units`
    units in all (both unbounded for tooling runs)."""
    global _left, _spent, _budget_s, _max_units, _deadline
    _left = FIRST_CHECK
    _spent = 0
    _budget_s = budget_s
    _max_units = max_units
    _deadline = 0.0


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
    global _left, _spent, _deadline
    if -_left > SINGLE_MAX and _max_units != UNBOUNDED:
        raise OverBudget
    _spent += CHECK_EVERY - _left if _deadline else FIRST_CHECK - _left
    _left = CHECK_EVERY
    if _spent > _max_units:
        raise OverBudget
    now = time.perf_counter()
    if not _deadline:
        _deadline = now + _budget_s
    elif now > _deadline:
        raise OverBudget


def spend_each(count: int, units: int) -> None:
    """Exactly `count` calls of `spend(units)` (what an output copy of `count` objects of
    `units` keys each charges): when no call would reach a check, as one subtraction."""
    global _left
    total = count * units
    if _left - total >= 0:  # _left only falls, so no call in between would have checked
        _left -= total
        return
    for _ in range(count):
        spend(units)
