"""Grammar rules → typed AST (`nodes`), one method per grammar rule.

Each method receives the rule's position and its children, and returns a node. Valid files
reach the methods from the parse driver (`driver.py`, positions as `(start, end)` offsets);
the Lark path walks Lark's tree (`transform`, positions as Lark's `meta`). Token text is
unwrapped here (backticks, quotes, inline argument splitting) so the executor never sees raw
syntax.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

from lark import Token, Tree
from lark.tree import Meta

from webpipe.errors import WpSyntaxError
from webpipe.source import Source, Span
from webpipe.syntax import nodes as n

_NAME_ARGS = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_-]*)([(\[])(.*)[)\]]\Z", re.S)
_BRANCH = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_-]*)\s*\(\s*([0-9]+)\s*\)\s*:\Z")
_OPENERS = {"(": ")", "[": "]", "{": "}"}


def split_args(text: str) -> tuple[str, ...]:
    """Split inline-argument text on top-level commas (brackets and strings respected)."""
    parts: list[str] = []
    depth, start, i = 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif ch in _OPENERS:
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    stripped = tuple(p.strip() for p in parts)
    return () if stripped == ("",) else stripped


def unquote(token: Token) -> str:
    """The text of a backtick or double-quoted token without its delimiters."""
    return str(token)[1:-1]


def _strip_trailing_comment(text: str) -> str:
    # spec/decisions.md: ` # ...` after a rest-of-line value is a comment
    return re.sub(r"\s+#.*\Z", "", text)


_VALUE_KINDS: dict[str, n.ValueKind] = {
    "BACKTICK": "backtick", "STRING": "quoted", "NUMBER": "number",
    "TRUE": "true", "FALSE": "false", "NULL": "null",
}


Handler = Callable[[Any, list[Any]], Any]  # (Lark `Meta` or the driver's extent, children)


class ToAst:
    """Builds `nodes.Program` from a Lark tree (see module docstring).

    A walk of our own rather than Lark's `Transformer` with `v_args(meta=True)`, which builds
    a wrapper function per rule call (about a tenth of a large file's load time). A rule
    without a method keeps its Lark tree, as `Transformer.__default__` does."""

    def __init__(self, source: Source, *, extents: bool = False) -> None:
        """`extents`: positions are the driver's `(start, end)` offsets (or None) only,
        so spans come from `Source.extent_spans` directly, without `_meta_span`'s tests."""
        self.source = source
        self._handlers: dict[str, Handler] = {}
        self._span: Callable[[Any], Span] = \
            source.extent_spans() if extents else self._meta_span

    def transform(self, tree: Tree[Token]) -> n.Program:
        program = self._walk(tree)
        assert isinstance(program, n.Program), "the start rule builds the Program"
        return program

    def _walk(self, tree: Tree[Token]) -> Any:
        children = [self._walk(c) if isinstance(c, Tree) else c for c in tree.children]
        name = str(tree.data)
        handler = self.handler(name)
        if handler is None:
            return Tree(tree.data, children, tree.meta)
        return handler(tree.meta, children)

    def handler(self, rule: str) -> Handler | None:
        """The method building `rule`'s node; None keeps a Lark tree."""
        found = self._handlers.get(rule)
        if found is None and self.method(rule) is not None:
            found = self._handlers[rule] = getattr(self, rule)
        return found

    @classmethod
    def method(cls, rule: str) -> Callable[[ToAst, Any, list[Any]], Any] | None:
        """The unbound method building `rule`'s node (see `handler`)."""
        if rule.startswith("_") or rule in ("transform", "handler", "method"):
            return None
        found: Callable[[ToAst, Any, list[Any]], Any] | None = getattr(cls, rule, None)
        return found

    def _tok_span(self, token: Token) -> Span:
        start = token.start_pos or 0
        return self.source.span(start, token.end_pos if token.end_pos is not None else start)

    def _value(self, token: Token) -> n.Value:
        kind = _VALUE_KINDS.get(token.type, "rest")
        text = str(token)
        if kind in ("backtick", "quoted"):
            text = text[1:-1]
        elif kind == "rest":
            text = _strip_trailing_comment(text.strip())
        return n.Value(text=text, kind=kind, span=self._tok_span(token))

    def _meta_span(self, meta: Meta | tuple[int, int] | None) -> Span:
        if isinstance(meta, tuple):  # the driver's (start, end) offsets
            return self.source.span(*meta)
        if meta is None or getattr(meta, "empty", True):
            return self.source.span(0, 0)
        return self.source.span(meta.start_pos, meta.end_pos)

    # ---- top level ----------------------------------------------------------------

    def start(self, meta: Meta, items: list[n.Item]) -> n.Program:
        return n.Program(items=tuple(items), span=self.source.span(0, len(self.source.text)))

    def config(self, meta: Meta, ch: list[Any]) -> n.ConfigBlock:
        return n.ConfigBlock(name=str(ch[0]), props=tuple(ch[1:]), span=self._span(meta))

    def config_prop(self, meta: Meta, ch: list[Any]) -> n.ConfigProp:
        return n.ConfigProp(key=str(ch[0]), value=ch[1], span=self._span(meta))

    def literal(self, meta: Meta, ch: list[Token]) -> str | int | bool:
        tok = ch[0]
        if tok.type == "STRING":
            return unquote(tok)
        if tok.type in ("TRUE", "FALSE"):
            return tok.type == "TRUE"
        return _number(str(tok), self._tok_span(tok))

    def env_default(self, meta: Meta, ch: list[Any]) -> n.EnvRef:
        default: str | int | bool = ch[1]
        return n.EnvRef(var=str(ch[0])[1:], default=default, has_default=True,
                        span=self._span(meta))

    def env_ref(self, meta: Meta, ch: list[Token]) -> n.EnvRef:
        return n.EnvRef(var=str(ch[0])[1:], span=self._span(meta))

    def import_(self, meta: Meta, ch: list[Token]) -> n.Import:
        return n.Import(path=unquote(ch[0]), alias=str(ch[1]), span=self._span(meta))

    def feature_flags(self, meta: Meta, ch: list[Any]) -> n.FeatureFlags:
        return n.FeatureFlags(pipeline=ch[0], span=self._span(meta))

    def graphql_schema(self, meta: Meta, ch: list[Token]) -> n.GraphqlSchema:
        return n.GraphqlSchema(sdl=unquote(ch[0]), span=self._span(meta))

    def query_resolver(self, meta: Meta, ch: list[Any]) -> n.Resolver:
        return n.Resolver(kind="query", type_name="Query", field_name=str(ch[0]),
                          pipeline=ch[1], span=self._span(meta))

    def mutation_resolver(self, meta: Meta, ch: list[Any]) -> n.Resolver:
        return n.Resolver(kind="mutation", type_name="Mutation", field_name=str(ch[0]),
                          pipeline=ch[1], span=self._span(meta))

    def type_resolver(self, meta: Meta, ch: list[Any]) -> n.Resolver:
        type_name, field_name = str(ch[0]).split(".", 1)
        return n.Resolver(kind="resolver", type_name=type_name, field_name=field_name,
                          pipeline=ch[1], span=self._span(meta))

    def named_pipeline(self, meta: Meta, ch: list[Any]) -> n.NamedPipeline:
        return n.NamedPipeline(name=str(ch[0]), pipeline=ch[1], span=self._span(meta))

    def variable(self, meta: Meta, ch: list[Token]) -> n.Variable:
        body = str(ch[2])[3:-3] if ch[2].type == "TRIPLE_STRING" else unquote(ch[2])
        return n.Variable(kind=str(ch[0]), name=str(ch[1]), body=body,
                          span=self._span(meta))

    def route(self, meta: Meta, ch: list[Any]) -> n.Route:
        return n.Route(method=str(ch[0]), path=str(ch[1]), pipeline=ch[2], span=self._span(meta))

    # ---- steps --------------------------------------------------------------------

    def pipeline(self, meta: Meta, steps: list[n.Step]) -> n.Pipeline:
        return n.Pipeline(steps=tuple(steps), span=self._span(meta))

    def regular_step(self, meta: Meta, ch: list[Any]) -> n.MiddlewareStep:
        name, form, args = ch[0]
        config, kind, tags = None, n.ConfigKind.NONE, None
        for child in ch[1:]:
            if isinstance(child, tuple):
                config, kind = child
            else:
                tags = child
        return n.MiddlewareStep(name=name, config=config, config_kind=kind, args=args,
                                arg_form=form, tags=tags, span=self._span(meta))

    def step_head(self, meta: Meta, ch: list[Token]) -> tuple[str, str, tuple[str, ...]]:
        tok = ch[0]
        if tok.type != "NAME_ARGS":
            return str(tok), "", ()
        m = _NAME_ARGS.match(str(tok))
        assert m is not None, "NAME_ARGS terminal always matches"
        return m.group(1), m.group(2), split_args(m.group(3))

    def step_config(self, meta: Meta, ch: list[Any]) -> tuple[str, n.ConfigKind]:
        child = ch[0]
        if isinstance(child, list):
            return ", ".join(child), n.ConfigKind.LIST
        if child.type == "BACKTICK":
            return unquote(child), n.ConfigKind.BACKTICK
        if child.type == "STRING":
            return unquote(child), n.ConfigKind.QUOTED
        return str(child), n.ConfigKind.IDENT

    def ident_list(self, meta: Meta, ch: list[Token]) -> list[str]:
        return [str(t) for t in ch]

    def result_step(self, meta: Meta, ch: list[Any]) -> n.ResultStep:
        branches = tuple(c for c in ch if isinstance(c, n.ResultBranch))
        return n.ResultStep(branches=branches, span=self._span(meta))

    def result_branch(self, meta: Meta, ch: list[Any]) -> n.ResultBranch:
        m = _BRANCH.match(str(ch[0]))
        assert m is not None, "BRANCH_HEAD terminal always matches"
        digits = m.group(2).lstrip("0") or "0"
        if len(digits) != 3 or not "100" <= digits <= "599":
            raise WpSyntaxError(f"result branch status must be between 100 and 599, got "
                                f"{m.group(2)[:20]}", span=self._span(meta))
        return n.ResultBranch(name=m.group(1), status=int(digits), pipeline=ch[1],
                              span=self._span(meta))

    def if_step(self, meta: Meta, ch: list[Any]) -> n.IfStep:
        pipes = [c for c in ch if isinstance(c, n.Pipeline)]
        has_end = any(isinstance(c, Token) and c.type == "END" for c in ch)
        return n.IfStep(condition=pipes[0], then=pipes[1],
                        else_=pipes[2] if len(pipes) > 2 else None, has_end=has_end,
                        span=self._span(meta), then_at=_token_at(ch, "THEN_COLON"),
                        else_at=_token_at(ch, "ELSE_COLON"))

    def dispatch_step(self, meta: Meta, ch: list[Any]) -> n.DispatchStep:
        cases = tuple(c for c in ch if isinstance(c, n.DispatchCase))
        default = next((c for c in ch if isinstance(c, n.Pipeline)), None)
        has_end = any(isinstance(c, Token) and c.type == "END" for c in ch)
        return n.DispatchStep(cases=cases, default=default, has_end=has_end,
                              span=self._span(meta), default_at=_token_at(ch, "DEFAULT_COLON"))

    def dispatch_case(self, meta: Meta, ch: list[Any]) -> n.DispatchCase:
        return n.DispatchCase(condition=ch[0], pipeline=ch[1], span=self._span(meta))

    def foreach_step(self, meta: Meta, ch: list[Any]) -> n.ForeachStep:
        selector = str(ch[0]).strip()
        return n.ForeachStep(selector=selector, pipeline=ch[1], span=self._span(meta))

    # ---- tags ---------------------------------------------------------------------

    def tag_or(self, meta: Meta, ch: list[Any]) -> n.TagExpr:
        items = tuple(c for c in ch if not isinstance(c, Token))
        return items[0] if len(items) == 1 else n.TagOr(items=items, span=self._span(meta))

    def tag_and(self, meta: Meta, ch: list[Any]) -> n.TagExpr:
        items = tuple(c for c in ch if not isinstance(c, Token))
        return items[0] if len(items) == 1 else n.TagAnd(items=items, span=self._span(meta))

    def tag(self, meta: Meta, ch: list[Any]) -> n.Tag:
        head = str(ch[0])
        negated = head.startswith("@!")
        name = head.lstrip("@!").rstrip("(")
        args = tuple(a for a in ch[1:] if isinstance(a, str) and not isinstance(a, Token))
        return n.Tag(name=name, negated=negated, args=args, has_parens=head.endswith("("),
                     span=self._span(meta))

    def tag_arg(self, meta: Meta, ch: list[Token]) -> str:
        tok = ch[0]
        return unquote(tok) if tok.type in ("BACKTICK", "STRING") else str(tok)

    # ---- tests --------------------------------------------------------------------

    def describe(self, meta: Meta, ch: list[Any]) -> n.Describe:
        return n.Describe(name=unquote(ch[0]), items=tuple(ch[1:]), span=self._span(meta))

    def let(self, meta: Meta, ch: list[Any]) -> n.Let:
        return n.Let(name=str(ch[0]), value=ch[1], span=self._span(meta))

    def let_value(self, meta: Meta, ch: list[Token]) -> n.Value:
        return self._value(ch[0])

    def value(self, meta: Meta, ch: list[Token]) -> n.Value:
        return self._value(ch[0])

    def mock(self, meta: Meta, ch: list[Any]) -> n.Mock:
        keyword: Literal["with", "and"] = "with" if ch[0].type == "WITH_MOCK" else "and"
        kind, middleware, name, target = ch[1]
        return n.Mock(target=target, kind=kind, middleware=middleware, name=name,
                      returning=unquote(ch[2]), keyword=keyword, span=self._span(meta))

    def mock_target(self, meta: Meta, ch: list[Token]) -> tuple[n.MockKind, str, str | None, str]:
        if len(ch) == 2:
            word = str(ch[0])
            return word, word, str(ch[1]), f"{word} {ch[1]}"  # type: ignore[return-value]
        text = str(ch[0])
        head, dot, rest = text.partition(".")
        if not dot:
            return "middleware", text, None, text
        if head == "pipeline":
            return "pipeline", "pipeline", rest, text
        return "named", head, rest, text

    def it(self, meta: Meta, ch: list[Any]) -> n.It:
        trigger = next(c for c in ch if isinstance(c, n.CallTrigger | n.PipelineTrigger
                                                   | n.VariableTrigger))
        return n.It(
            name=unquote(ch[0]),
            mocks=tuple(c for c in ch if isinstance(c, n.Mock)),
            lets=tuple(c for c in ch if isinstance(c, n.Let)),
            trigger=trigger,
            clauses=tuple(c for c in ch if isinstance(c, n.RequestClause)),
            assertions=tuple(c for c in ch if isinstance(c, n.FieldAssertion
                                                         | n.SelectorAssertion
                                                         | n.CallAssertion)),
            span=self._span(meta),
        )

    def trigger_call(self, meta: Meta, ch: list[Token]) -> n.CallTrigger:
        return n.CallTrigger(method=str(ch[0]), path=str(ch[1]).strip(), span=self._span(meta))

    def trigger_pipeline(self, meta: Meta, ch: list[Token]) -> n.PipelineTrigger:
        return n.PipelineTrigger(name=str(ch[-1]), span=self._span(meta))

    def trigger_variable(self, meta: Meta, ch: list[Token]) -> n.VariableTrigger:
        return n.VariableTrigger(kind=str(ch[0]), name=str(ch[1]), span=self._span(meta))

    def with_clause(self, meta: Meta, ch: list[Token]) -> n.RequestClause:
        kind = str(ch[-2])
        return n.RequestClause(kind=kind, value=self._value(ch[-1]),  # type: ignore[arg-type]
                               span=self._span(meta))

    def stdin_clause(self, meta: Meta, ch: list[Token]) -> n.RequestClause:
        return n.RequestClause(kind="stdin", value=self._value(ch[-1]), span=self._span(meta))

    def args_clause(self, meta: Meta, ch: list[Token]) -> n.RequestClause:
        return n.RequestClause(kind="args", value=self._value(ch[-1]), span=self._span(meta))

    def options_clause(self, meta: Meta, ch: list[Token]) -> n.RequestClause:
        return n.RequestClause(kind="options", value=self._value(ch[-1]), span=self._span(meta))

    def assertion(self, meta: Meta, ch: list[Any]) -> n.Assertion:
        body: n.Assertion = ch[1]
        return body

    def field_assertion(self, meta: Meta, ch: list[Any]) -> n.FieldAssertion:
        has_path = isinstance(ch[1], Token) and ch[1].type != "ASSERT_OP"
        path = self._value(ch[1]) if has_path else None
        op_tok = next(c for c in ch if isinstance(c, Token) and c.type == "ASSERT_OP")
        value = ch[-1] if isinstance(ch[-1], n.Value) else None
        return n.FieldAssertion(subject=str(ch[0]), path=path, op=_op(op_tok), value=value,
                                span=self._span(meta))

    def selector_assertion(self, meta: Meta, ch: list[Any]) -> n.SelectorAssertion:
        check, attribute, op, value = ch[1]
        return n.SelectorAssertion(selector=self._value(ch[0]), check=check, attribute=attribute,
                                   op=op, value=value, span=self._span(meta))

    def sel_presence(self, meta: Meta, ch: list[Token]) -> tuple[str, None, str, None]:
        op = _op(ch[0])
        if op not in ("exists", "does not exist"):
            raise WpSyntaxError(f"selector check must be `exists` or `does not exist`, got {op!r}",
                                span=self._tok_span(ch[0]))
        return ("exists" if op == "exists" else "not_exists"), None, op, None

    def sel_text(self, meta: Meta, ch: list[Any]) -> tuple[str, None, str, n.Value]:
        return "text", None, _op(ch[1]), ch[2]

    def sel_count(self, meta: Meta, ch: list[Any]) -> tuple[str, None, str, n.Value]:
        return "count", None, _op(ch[1]), ch[2]

    def sel_attribute(self, meta: Meta, ch: list[Any]) -> tuple[str, n.Value, str, n.Value]:
        return "attribute", self._value(ch[1]), _op(ch[2]), ch[3]

    def call_assertion(self, meta: Meta, ch: list[Any]) -> n.CallAssertion:
        return n.CallAssertion(kind=str(ch[0]), name=str(ch[1]),  # type: ignore[arg-type]
                               value=ch[-1], span=self._span(meta))


def _op(token: Token) -> str:
    return " ".join(str(token).split())


def _number(text: str, span: Span) -> int:
    if not (text.isascii() and text.isdigit()):
        raise WpSyntaxError(f"config values must be non-negative integers, got {text}", span=span)
    if len(text) > 18:  # past any useful setting, and int() refuses 4300 digits
        raise WpSyntaxError(f"config value {text[:20]}… is too large (at most 18 digits)",
                            span=span)
    return int(text)


def _token_at(children: list[Any], kind: str) -> int:
    """Start offset of the first `kind` token among a rule's children (-1 when absent)."""
    for child in children:
        if isinstance(child, Token) and child.type == kind:
            return child.start_pos if child.start_pos is not None else -1
    return -1
