"""Steps whose indentation says one block and whose parse says another.

Indentation does not delimit blocks: a `result` branch runs to the end of its pipeline, so a
step written back at the route's indentation after a `result` is still read into the last
branch. Such a step is indented less than the steps before it in the same block. `check`
warns about it, and `fmt` refuses to format the file rather than indent the step into the
block it was parsed into (which would hide the mistake by making it look intended).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from webpipe.syntax import nodes as n


@dataclass(frozen=True, slots=True)
class Misplaced:
    """A step read into `block` though it is indented less than the block's first step."""

    step: n.Step
    block: str  # "the `notFound(404)` branch of the `result` at line 3"

    @property
    def message(self) -> str:
        hint = ""
        if "`result`" in self.block:
            hint = ("; a result branch runs to the end of the pipeline, so steps meant for "
                    "the whole route go before `|> result`")
        return (f"this step is part of {self.block}, though it is indented as if it were "
                f"not: indent it like the block's other steps{hint}")


def misplaced_steps(program: n.Program) -> list[Misplaced]:
    found: list[Misplaced] = []
    for item in program.items:
        pipeline = getattr(item, "pipeline", None)
        if isinstance(pipeline, n.Pipeline):
            _walk(pipeline, found)
    return found


def _walk(pipeline: n.Pipeline, found: list[Misplaced]) -> None:
    for step in pipeline.steps:
        for block, child in _blocks(step):
            steps = child.steps
            if steps:
                column = steps[0].span.column
                found.extend(Misplaced(s, block) for s in steps[1:]
                             if s.span.line > steps[0].span.line and s.span.column < column)
            _walk(child, found)


def _blocks(step: n.Step) -> Iterator[tuple[str, n.Pipeline]]:
    line = step.span.line
    match step:
        case n.ResultStep(branches=branches):
            for b in branches:
                yield f"the `{b.name}({b.status})` branch of the `result` at line {line}", \
                    b.pipeline
        case n.IfStep(condition=c, then=t, else_=e):
            yield f"the condition of the `if` at line {line}", c
            yield f"the `then:` branch of the `if` at line {line}", t
            if e is not None:
                yield f"the `else:` branch of the `if` at line {line}", e
        case n.DispatchStep(cases=cases, default=d):
            for case in cases:
                yield f"a `case` of the `dispatch` at line {line}", case.pipeline
            if d is not None:
                yield f"the `default:` of the `dispatch` at line {line}", d
        case n.ForeachStep(pipeline=p):
            yield f"the body of the `foreach` at line {line}", p
