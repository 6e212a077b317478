"""The seam between the executor and middleware.

`Invoker.invoke()` runs a step's middleware; the test runner substitutes a subclass that
answers from mocks first (spec/testing.md §5). Middleware never know about tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from webpipe.errors import StepError
from webpipe.middleware.base import StepCall, StepResult

if TYPE_CHECKING:
    from webpipe.executor.plan import StepPlan


class Invoker:
    """Runs the real middleware."""

    async def invoke(self, plan: StepPlan, state: Any, call: StepCall) -> StepResult:
        if plan.prepare_error:
            raise StepError(plan.prepare_error)
        assert plan.middleware is not None, "middleware plans always carry their middleware"
        return await plan.middleware.run(state, plan.prepared, call)

    def step_mock(self, plan: StepPlan, state: Any) -> tuple[Any] | None:
        """A mocked result for a middleware step, as a 1-tuple, or None. Asked before the
        step's inline arguments are evaluated: a mock replaces the whole call."""
        return None

    def pipeline_mock(self, name: str) -> tuple[Any] | None:
        """A mocked result for named pipeline `name`, as a 1-tuple, or None."""
        return None

    def resolver_mock(self, type_name: str, field_name: str) -> tuple[Any] | None:
        """A mocked result for GraphQL resolver `type_name.field_name`, or None."""
        return None


REAL_INVOKER = Invoker()
