"""Mocks: an `Invoker` that answers from a test's mocks before running real middleware.

Lookup for a step of middleware M (spec/testing.md §5.3): a string `resultName` R in the
step's input selects the named mock (M, R), or any (M, `alias::R`); then, as our
improvement, an `@result(R)` tag selects (M, R); then the middleware mock M; else the real
middleware runs. Pipeline mocks apply at every named-pipeline invocation (improvement).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from webpipe.executor.invoker import Invoker
from webpipe.middleware.base import StepCall, StepResult

if TYPE_CHECKING:
    from webpipe.executor.plan import StepPlan


@dataclass(eq=False)
class MockSet:
    """Evaluated mock values by category; later definitions replace earlier ones."""

    middleware: dict[str, Any] = field(default_factory=dict)
    named: dict[tuple[str, str], Any] = field(default_factory=dict)
    pipelines: dict[str, Any] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)

    def overlay(self, other: MockSet) -> MockSet:
        return MockSet({**self.middleware, **other.middleware}, {**self.named, **other.named},
                       {**self.pipelines, **other.pipelines})

    def named_for(self, middleware: str, name: str) -> tuple[Any] | None:
        if (middleware, name) in self.named:
            return (self.named[middleware, name],)
        for (mw, key), value in self.named.items():
            if mw == middleware and key.partition("::")[2] == name:
                return (value,)
        return None

    def resolver(self, type_name: str, field_name: str) -> tuple[Any] | None:
        """GraphQL resolver mocks: `Query.x`, `query x`, `Type.field` (§5.3)."""
        for prefix in (type_name, type_name.lower()):
            found = self.named_for(prefix, field_name)
            if found is not None:
                return found
        return None


class MockInvoker(Invoker):
    """Runs mocks first, then the real middleware (middleware never know about tests)."""

    def __init__(self, mocks: MockSet) -> None:
        self.mocks = mocks

    async def invoke(self, plan: StepPlan, state: Any, call: StepCall) -> StepResult:
        found = self.lookup(plan, state)
        if found is not None:
            return StepResult(found[0])
        return await super().invoke(plan, state, call)

    def lookup(self, plan: StepPlan, state: Any) -> tuple[Any] | None:
        name = state.get("resultName") if isinstance(state, dict) else None
        if isinstance(name, str):
            found = self.mocks.named_for(plan.name, name)
            if found is not None:
                return found
        elif plan.tags.result_name:
            found = self.mocks.named_for(plan.name, plan.tags.result_name)
            if found is not None:
                return found
        if plan.name in self.mocks.middleware:
            return (self.mocks.middleware[plan.name],)
        return None

    def step_mock(self, plan: StepPlan, state: Any) -> tuple[Any] | None:
        return self.lookup(plan, state)

    def pipeline_mock(self, name: str) -> tuple[Any] | None:
        if name in self.mocks.pipelines:
            return (self.mocks.pipelines[name],)
        return None

    def resolver_mock(self, type_name: str, field_name: str) -> tuple[Any] | None:
        return self.mocks.resolver(type_name, field_name)
