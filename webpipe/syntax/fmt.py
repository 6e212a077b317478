"""`webpipe fmt`: print a `Program` in one canonical layout, keeping every comment.

Layout: one blank line between top-level items; steps indented two spaces under their
owner; branch bodies two more; `end` aligned with the `|>` that opened its block; tags
after the config, juxtaposed. Backtick and quoted texts are printed verbatim. Comments
are re-emitted before the first node that starts after them; a comment that ended a line
of code stays at the end of that line.
"""

from __future__ import annotations

import re
from pathlib import Path

from webpipe.errors import CheckError, LoadError
from webpipe.loader import read_file
from webpipe.source import Source
from webpipe.syntax import nodes as n
from webpipe.syntax.layout import misplaced_steps
from webpipe.syntax.parser import parse

_IDENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*\Z")


class Printer:
    def __init__(self, program: n.Program) -> None:
        self.lines: list[str] = []
        self.comments = list(program.comments)

    # ---- comments -------------------------------------------------------------------

    def leading(self, node_start: int, indent: str) -> None:
        """Comments before a node, keeping one blank line where the source had any after a
        comment (so a file's header comment stays detached from the first item)."""
        while self.comments and self.comments[0].span.start < node_start:
            comment = self.comments.pop(0)
            self.lines.append(indent + comment.text.rstrip())
            source = comment.span.source
            following = self.comments[0].span.start if self.comments and \
                self.comments[0].span.start < node_start else node_start
            if following < len(source.text) and \
                    source.position(following)[0] > comment.span.line + 1:
                self.lines.append("")

    def trailing(self, end: int, end_line: int) -> None:
        if self.comments and self.comments[0].span.line == end_line \
                and self.comments[0].span.start >= end and self.lines:
            self.lines[-1] += "  " + self.comments.pop(0).text.rstrip()

    def emit(self, node_span_start: int, indent: str, text: str) -> None:
        self.leading(node_span_start, indent)
        self.lines.append(indent + text)

    # ---- top level ------------------------------------------------------------------

    def program(self, program: n.Program) -> str:
        for index, item in enumerate(program.items):
            if index:
                self.lines.append("")
            self.item(item)
        self.leading(10**12, "")
        return "\n".join(line.rstrip() for line in self.lines).strip("\n") + "\n"

    def item(self, item: n.Item) -> None:
        start = item.span.start
        match item:
            case n.ConfigBlock():
                self.emit(start, "", f"config {item.name} {{")
                for prop in item.props:
                    self.emit(prop.span.start, "  ", f"{prop.key}: {config_value(prop.value)}")
                    self.trailing(prop.span.end, prop.span.end_line)
                self.lines.append("}")
            case n.Import():
                self.emit(start, "", f'import "{item.path}" as {item.alias}')
            case n.FeatureFlags():
                self.headed(start, "featureFlags =", item.pipeline)
            case n.GraphqlSchema():
                self.emit(start, "", f"graphqlSchema = `{item.sdl}`")
            case n.Resolver():
                head = {"query": f"query {item.field_name}",
                        "mutation": f"mutation {item.field_name}",
                        "resolver": f"resolver {item.type_name}.{item.field_name}"}[item.kind]
                self.headed(start, f"{head} =", item.pipeline)
            case n.NamedPipeline():
                self.headed(start, f"pipeline {item.name} =", item.pipeline)
            case n.Variable():
                body = f'"""{item.body}"""' if "`" in item.body else f"`{item.body}`"
                self.emit(start, "", f"{item.kind} {item.name} = {body}")
            case n.Route():
                self.headed(start, f"{item.method} {item.path}", item.pipeline)
            case n.Describe():
                self.describe(item)

    def headed(self, start: int, head: str, pipeline: n.Pipeline) -> None:
        self.emit(start, "", head)
        self.pipeline(pipeline, "  ")

    # ---- steps ----------------------------------------------------------------------

    def pipeline(self, pipeline: n.Pipeline, indent: str) -> None:
        for step in pipeline.steps:
            self.step(step, indent)

    def step(self, step: n.Step, ind: str) -> None:
        start, inner = step.span.start, ind + "  "
        match step:
            case n.MiddlewareStep():
                self.emit(start, ind, "|> " + middleware_step(step))
                self.trailing(step.span.end, step.span.end_line)
            case n.ResultStep():
                self.emit(start, ind, "|> result")
                for branch in step.branches:
                    self.emit(branch.span.start, inner, f"{branch.name}({branch.status}):")
                    self.pipeline(branch.pipeline, inner + "  ")
            case n.IfStep():
                self.emit(start, ind, "|> if")
                self.pipeline(step.condition, inner)
                self.emit(_at(step.then_at, step.then), inner, "then:")
                self.pipeline(step.then, inner + "  ")
                if step.else_ is not None:
                    self.emit(_at(step.else_at, step.else_), inner, "else:")
                    self.pipeline(step.else_, inner + "  ")
                self.end(step.has_end, step.span.end, ind)
            case n.DispatchStep():
                self.emit(start, ind, "|> dispatch")
                for case in step.cases:
                    self.emit(case.span.start, inner, f"case {tag_expr(case.condition)}:")
                    self.pipeline(case.pipeline, inner + "  ")
                if step.default is not None:
                    self.emit(_at(step.default_at, step.default), inner, "default:")
                    self.pipeline(step.default, inner + "  ")
                self.end(step.has_end, step.span.end, ind)
            case n.ForeachStep():
                self.emit(start, ind, f"|> foreach {step.selector}")
                self.pipeline(step.pipeline, inner)
                self.end(True, step.span.end, ind)

    def end(self, has_end: bool, end: int, indent: str) -> None:
        if has_end:
            self.emit(end - 3, indent, "end")

    # ---- tests ----------------------------------------------------------------------

    def describe(self, item: n.Describe) -> None:
        self.emit(item.span.start, "", f'describe "{item.name}"')
        for index, child in enumerate(item.items):
            if isinstance(child, n.It):
                if index:
                    self.lines.append("")
                self.it(child)
            elif isinstance(child, n.Let):
                self.emit(child.span.start, "  ", let(child))
            else:
                self.emit(child.span.start, "  ", mock(child))

    def it(self, test: n.It) -> None:
        """Lets and mocks written before the trigger stay before it, in source order; mocks
        after it follow the request clauses. Mock order decides which mock wins, so it is
        never changed (nor is a mock's `with`/`and`)."""
        self.emit(test.span.start, "  ", f'it "{test.name}"')
        ind, when = "    ", test.trigger.span.start
        before: list[n.Let | n.Mock] = [*test.lets, *(m for m in test.mocks
                                                       if m.span.start < when)]
        before.sort(key=lambda item: item.span.start)
        for item in before:
            self.emit(item.span.start, ind, let(item) if isinstance(item, n.Let) else mock(item))
        self.emit(when, ind, "when " + trigger(test.trigger))
        for index, clause in enumerate(test.clauses):
            self.emit(clause.span.start, ind, request_clause(clause, index == 0))
        for m in test.mocks:
            if m.span.start > when:
                self.emit(m.span.start, ind, mock(m))
        for index, check in enumerate(test.assertions):
            word = "then" if index == 0 else "and"
            self.emit(check.span.start, ind, f"{word} {assertion(check)}")
            self.trailing(check.span.end, check.span.end_line)


def _at(keyword_at: int, body: n.Pipeline) -> int:
    """Where a `then:`/`else:`/`default:` line starts: its keyword when the parser saw
    it, else its body (comments before that position are printed above the keyword)."""
    return keyword_at if keyword_at >= 0 else body.span.start


def config_value(value: n.ConfigValue) -> str:
    if isinstance(value, n.EnvRef):
        if not value.has_default:
            return f"${value.var}"
        return f"${value.var} || {config_value(value.default)}"  # type: ignore[arg-type]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return f'"{value}"'


def middleware_step(step: n.MiddlewareStep) -> str:
    text = step.name
    if step.arg_form:
        close = ")" if step.arg_form == "(" else "]"
        text += step.arg_form + ", ".join(step.args) + close
    match step.config_kind:
        case n.ConfigKind.BACKTICK:
            text += f": `{step.config}`"
        case n.ConfigKind.QUOTED:
            text += f': "{step.config}"'
        case n.ConfigKind.IDENT | n.ConfigKind.LIST:
            text += f": {step.config}"
    if step.tags is not None:
        text += " " + tag_expr(step.tags)
    return text


def tag_expr(expr: n.TagExpr, nested: bool = False) -> str:
    match expr:
        case n.Tag():
            head = f"@{'!' if expr.negated else ''}{expr.name}"
            return head + (f"({', '.join(tag_arg(a) for a in expr.args)})"
                           if expr.has_parens else "")
        case n.TagAnd(items=items):
            text = " ".join(tag_expr(i, True) for i in items)
        case n.TagOr(items=items):
            text = " or ".join(tag_expr(i, True) for i in items)
    return f"({text})" if nested else text


def tag_arg(arg: str) -> str:
    if _IDENT.match(arg):
        return arg
    return f"`{arg}`" if "`" not in arg else f'"{arg}"'


def let(item: n.Let) -> str:
    return f"let {item.name} = {value(item.value)}"


def mock(item: n.Mock) -> str:
    return f"{item.keyword} mock {item.target} returning `{item.returning}`"


def value(v: n.Value) -> str:
    if v.kind == "backtick":
        return f"`{v.text}`"
    if v.kind == "quoted":
        return f'"{v.text}"'
    return v.text


def trigger(t: n.Trigger) -> str:
    match t:
        case n.CallTrigger():
            return f"calling {t.method} {t.path}"
        case n.PipelineTrigger():
            return f"executing pipeline {t.name}"
        case n.VariableTrigger():
            return f"executing variable {t.kind} {t.name}"


def request_clause(clause: n.RequestClause, first: bool) -> str:
    if clause.kind in ("input", "body", "headers", "cookies"):
        return f"{'with' if first else 'and with'} {clause.kind} {value(clause.value)}"
    verb = "is" if clause.kind == "stdin" else "are"
    return f"and {clause.kind} {verb} {value(clause.value)}"


def assertion(a: n.Assertion) -> str:
    match a:
        case n.FieldAssertion():
            parts = [a.subject, value(a.path) if a.path else "", a.op,
                     value(a.value) if a.value else ""]
        case n.SelectorAssertion():
            check = {"exists": "exists", "not_exists": "does not exist"}.get(a.check)
            parts = ["selector", value(a.selector)]
            if check:
                parts.append(check)
            else:
                attr = value(a.attribute) if a.attribute else ""
                parts += [a.check, attr, a.op, value(a.value) if a.value else ""]
        case n.CallAssertion():
            parts = ["call", a.kind, a.name, "with", value(a.value)]
    return " ".join(p for p in parts if p)


def format_source(source: Source) -> str:
    """The canonical layout; `CheckError` for a step whose indentation says another block
    than its parse (formatting would move it into the block it was read into)."""
    program = parse(source)
    for wrong in misplaced_steps(program):
        raise CheckError(f"not formatted: {wrong.message}", span=wrong.step.span)
    return Printer(program).program(program)


def format_file(path: Path, *, write: bool = True) -> bool:
    """Format `path` in place (unless `write` is False); True when it changed."""
    text = read_file(path)
    formatted = format_source(Source.from_text(str(path), text))
    if formatted == text:
        return False
    if write:
        try:
            path.write_text(formatted, encoding="utf-8")
        except OSError as exc:
            raise LoadError(f"cannot write {path}: {exc.strerror or exc}") from None
    return True
