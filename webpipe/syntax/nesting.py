"""A bound on nesting: flow steps inside flow steps, and tag groups inside tag groups.

The parser is iterative, but everything after it (the checker, the planner, `fmt`, the
executor, tag evaluation) recurses once per level, and Python's stack is finite: a file of
3000 nested `|> if` blocks used to end in `RecursionError`. `check_nesting` walks the AST
with an explicit stack and turns the first node past `MAX_NESTING` into a syntax error at
its position. Fifty levels is far beyond any program written by hand.
"""

from __future__ import annotations

from collections.abc import Iterator

from webpipe.errors import WpSyntaxError
from webpipe.syntax import nodes as n

MAX_NESTING = 50


def check_nesting(program: n.Program) -> None:
    """Raise `WpSyntaxError` at the first step or tag group nested past `MAX_NESTING`."""
    stack: list[tuple[n.Pipeline, int]] = [(p, 0) for p in _item_pipelines(program)]
    while stack:
        pipeline, depth = stack.pop()
        for step in pipeline.steps:
            if isinstance(step, n.MiddlewareStep):
                if step.tags is not None:
                    _check_tags(step.tags)
                continue
            if depth >= MAX_NESTING:
                raise WpSyntaxError(f"steps nested more than {MAX_NESTING} levels deep",
                                    span=step.span)
            if isinstance(step, n.DispatchStep):
                for case in step.cases:
                    _check_tags(case.condition)
            stack.extend((child, depth + 1) for child in _children(step))


def _item_pipelines(program: n.Program) -> Iterator[n.Pipeline]:
    for item in program.items:
        pipeline = getattr(item, "pipeline", None)
        if isinstance(pipeline, n.Pipeline):
            yield pipeline


def _children(step: n.Step) -> Iterator[n.Pipeline]:
    match step:
        case n.IfStep():
            yield from (p for p in (step.condition, step.then, step.else_) if p is not None)
        case n.DispatchStep():
            yield from (case.pipeline for case in step.cases)
            if step.default is not None:
                yield step.default
        case n.ForeachStep():
            yield step.pipeline
        case n.ResultStep():
            yield from (branch.pipeline for branch in step.branches)


def _check_tags(expr: n.TagExpr) -> None:
    stack: list[tuple[n.TagExpr, int]] = [(expr, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, n.Tag):
            continue
        if depth >= MAX_NESTING:
            raise WpSyntaxError(f"tag groups nested more than {MAX_NESTING} levels deep",
                                span=node.span)
        stack.extend((item, depth + 1) for item in node.items)
