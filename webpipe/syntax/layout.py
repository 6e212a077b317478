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
        for block, child, floor in _blocks(step):
            found.extend(Misplaced(s, block) for s in _outdented(child.steps, floor))
            _walk(child, found)


def _outdented(steps: tuple[n.Step, ...], floor: int) -> Iterator[n.Step]:
    """Steps at or left of `floor`, or left of the block's first step (on a later line)."""
    first = steps[0] if steps else None
    for s in steps:
        if s.span.column <= floor or (first is not None and s.span.line > first.span.line
                                      and s.span.column < first.span.column):
            yield s


def _blocks(step: n.Step) -> Iterator[tuple[str, n.Pipeline, int]]:
    """Each block of `step`: how to name it, its steps, and the column they must be right
    of when nothing but the end of the pipeline closes the block (a result branch: its head;
    the last branch of an `if` or `dispatch` without `end`: the opening step), else 0. A
    block closed by a keyword (`then:`, `else:`, `case`, `end`) may be laid out flat."""
    line, column = step.span.line, step.span.column
    match step:
        case n.ResultStep(branches=branches):
            for b in branches:
                yield (f"the `{b.name}({b.status})` branch of the `result` at line {line}",
                       b.pipeline, b.span.column)
        case n.IfStep(condition=c, then=t, else_=e, has_end=closed):
            open_ = 0 if closed else column
            yield f"the condition of the `if` at line {line}", c, 0
            yield f"the `then:` branch of the `if` at line {line}", t, 0 if e else open_
            if e is not None:
                yield f"the `else:` branch of the `if` at line {line}", e, open_
        case n.DispatchStep(cases=cases, default=d, has_end=closed):
            open_ = 0 if closed else column
            for i, case in enumerate(cases):
                last = d is None and i == len(cases) - 1
                yield (f"a `case` of the `dispatch` at line {line}", case.pipeline,
                       open_ if last else 0)
            if d is not None:
                yield f"the `default:` of the `dispatch` at line {line}", d, open_
        case n.ForeachStep(pipeline=p):
            yield f"the body of the `foreach` at line {line}", p, 0
