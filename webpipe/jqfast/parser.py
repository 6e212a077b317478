"""A recursive-descent parser for jq 1.8 programs in the fast-path subset.

Precedence follows jq 1.8's bison grammar (lowest first): `|` (right), `,`, `E as $x |
body` (E is everything above `,`; the body is the rest of the pipe), `//` (right),
assignment operators (non-associative), `or`, `and`, comparisons (non-associative), `+ -`,
`* / %`, then unary minus (tighter than any binary operator in 1.8), postfix `?`, then
terms with their suffixes (`.a`, `[e]`, `[a:b]`, `[]`, each optionally `?`). `try` and
`catch` take a unary-level expression. Object values are pipes without `,` or `as`, as
in jq 1.8. `reduce`, `foreach`, `def`, `label` and destructuring raise `Unsupported`.
"""

from __future__ import annotations

from webpipe.jqfast import nodes as n
from webpipe.jqfast.errors import JqSyntaxError, Unsupported
from webpipe.jqfast.lexer import Token, tokenize
from webpipe.jqfast.numeric import literal_value

PRECEDENCE: dict[str, int] = {
    ",": 2, "//": 3, "=": 4, "|=": 4, "+=": 4, "-=": 4, "*=": 4, "/=": 4, "%=": 4, "//=": 4,
    "or": 5, "and": 6, "==": 7, "!=": 7, "<": 7, "<=": 7, ">": 7, ">=": 7,
    "+": 8, "-": 8, "*": 9, "/": 9, "%": 9,
}
_NON_ASSOCIATIVE = frozenset((4, 7))
_RIGHT_ASSOCIATIVE = frozenset(("//",))
_NO_COMMA = PRECEDENCE["//"]  # the operand of `,` and the source of `as`


def parse(text: str) -> n.Node:
    """Parse a whole program, or raise `Unsupported` / `JqSyntaxError`."""
    parser = Parser(tokenize(text))
    node = parser.parse_pipe()
    parser.expect("eof")
    return node


class Parser:
    """One pass over a token list; `no_as` marks an object value (jq rejects `as` there)."""

    def __init__(self, tokens: list[Token] | tuple[Token, ...]) -> None:
        self.tokens = tokens
        self.pos = 0

    # ---- token helpers -------------------------------------------------------------
    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def at(self, kind: str, value: object = None) -> bool:
        token = self.peek()
        return token.kind == kind and (value is None or token.value == value)

    def accept(self, kind: str, value: object = None) -> bool:
        if self.at(kind, value):
            self.pos += 1
            return True
        return False

    def expect(self, kind: str, value: object = None) -> Token:
        if not self.at(kind, value):
            raise JqSyntaxError(f"expected {value or kind} at {self.peek().pos}")
        return self.advance()

    # ---- expressions ---------------------------------------------------------------
    def parse_pipe(self, *, no_comma: bool = False, no_as: bool = False) -> n.Node:
        left = self.parse_as(no_as) if no_comma else self.parse_comma()
        if self.accept("op", "|"):
            return n.Pipe(left, self.parse_pipe(no_comma=no_comma, no_as=no_as))
        return left

    def parse_comma(self) -> n.Node:
        left = self.parse_as(False)
        while self.accept("op", ","):
            left = n.Comma(left, self.parse_as(False))
        return left

    def parse_as(self, no_as: bool) -> n.Node:
        """jq 1.8 binds `E as $x | body` with E at `//` level: `1 + 2 as $x` binds 3."""
        source = self.parse_binary(_NO_COMMA, no_as)
        if not self.accept("kw", "as"):
            return source
        if no_as:
            raise JqSyntaxError("`as` in an object value")
        if not self.at("var"):
            raise Unsupported("destructuring patterns")
        name = self.advance().value
        self.expect("op", "|")
        return n.Bind(source, name, self.parse_pipe())

    def _binary_operator(self) -> str | None:
        token = self.peek()
        if token.kind == "op" or (token.kind == "kw" and token.value in ("and", "or")):
            return token.value if token.value in PRECEDENCE else None
        return None

    def parse_binary(self, min_prec: int, no_as: bool) -> n.Node:
        left = self.parse_unary(no_as)
        last_prec = 0
        while (op := self._binary_operator()) is not None and PRECEDENCE[op] >= min_prec:
            prec = PRECEDENCE[op]
            if prec in _NON_ASSOCIATIVE and prec == last_prec:
                raise JqSyntaxError(f"non-associative {op!r} chained")
            self.advance()
            right = self.parse_binary(prec if op in _RIGHT_ASSOCIATIVE else prec + 1, no_as)
            left = _binary_node(op, left, right)
            last_prec = prec
        return left

    def parse_unary(self, no_as: bool) -> n.Node:
        if self.accept("op", "-"):
            return n.Neg(self.parse_unary(no_as))  # jq 1.8: `-a * b` is `(-a) * b`
        if self.accept("kw", "try"):
            body = self.parse_unary(no_as)
            handler = self.parse_unary(no_as) if self.accept("kw", "catch") else None
            return self._optional(n.Try(body, handler))
        return self._optional(self.parse_postfix(self.parse_primary()))

    def _optional(self, node: n.Node) -> n.Node:
        while self.accept("op", "?"):
            node = n.Try(node, None)
        return node

    # ---- terms ---------------------------------------------------------------------
    def parse_postfix(self, term: n.Node) -> n.Node:
        while True:
            token = self.peek()
            if token.kind == "field":
                self.advance()
                term = n.Index(term, n.Literal(token.value), self._opt())
            elif token.kind == "op" and token.value == "." and self.peek(1).kind == "str":
                self.advance()
                term = n.Index(term, self.parse_string(self.advance()), self._opt())
            elif token.kind == "op" and token.value == "." and self.peek(1).value == "[":
                self.advance()
            elif token.kind == "op" and token.value == "[":
                self.advance()
                term = self._parse_bracket_suffix(term)
            else:
                return term

    def _opt(self) -> bool:
        return self.accept("op", "?")

    def _parse_bracket_suffix(self, term: n.Node) -> n.Node:
        if self.accept("op", "]"):
            return n.Iterate(term, self._opt())
        start = None if self.at("op", ":") else self.parse_pipe()
        if self.accept("op", ":"):
            end = None if self.at("op", "]") else self.parse_pipe()
            if start is None and end is None:
                raise JqSyntaxError("empty slice")
            self.expect("op", "]")
            return n.Slice(term, start, end, self._opt())
        self.expect("op", "]")
        assert start is not None
        return n.Index(term, start, self._opt())

    def parse_primary(self) -> n.Node:
        token = self.advance()
        kind, value = token.kind, token.value
        if kind == "num":
            number = literal_value(value)
            if number is None:
                raise Unsupported(f"number literal {value} (libjq keeps its own text)")
            return n.Literal(number)
        if kind == "str":
            return self.parse_string(token)
        if kind == "field":
            return n.Index(n.Identity(), n.Literal(value), self._opt())
        if kind == "var":
            return n.Var(value)
        if kind == "ident":
            return self._parse_call(value)
        if kind == "kw" and value == "if":
            return self._parse_if()
        if kind == "op":
            return self._parse_bracketed(value)
        if kind == "kw" and value in ("reduce", "foreach", "def", "label", "break"):
            raise Unsupported(f"`{value}` is outside the fast-path subset")
        raise JqSyntaxError(f"unexpected {value!r}")

    def _parse_bracketed(self, value: str) -> n.Node:
        if value == ".":
            if self.at("str"):
                return n.Index(n.Identity(), self.parse_string(self.advance()), self._opt())
            return n.Identity()
        if value == "(":
            inner = self.parse_pipe()
            self.expect("op", ")")
            return inner
        if value == "[":
            if self.accept("op", "]"):
                return n.Collect(None)
            body = self.parse_pipe()
            self.expect("op", "]")
            return n.Collect(body)
        if value == "{":
            return self._parse_object()
        raise JqSyntaxError(f"unexpected {value!r}")

    def parse_string(self, token: Token) -> n.Node:
        parts: list[str | n.Node] = []
        for part in token.value:
            if isinstance(part, str):
                if part:
                    parts.append(part)
                continue
            inner = Parser(part)
            parts.append(inner.parse_pipe())
            inner.expect("eof")
        if all(isinstance(p, str) for p in parts):
            return n.Literal("".join(parts))  # type: ignore[arg-type]
        return n.Str(tuple(parts))

    def _parse_call(self, name: str) -> n.Node:
        if not self.accept("op", "("):
            constants = {"true": True, "false": False, "null": None}
            return n.Literal(constants[name]) if name in constants else n.Call(name)
        args = [self.parse_pipe()]
        while self.accept("op", ";"):
            args.append(self.parse_pipe())
        self.expect("op", ")")
        return n.Call(name, tuple(args))

    def _parse_if(self) -> n.Node:
        cond = self.parse_pipe()
        self.expect("kw", "then")
        then = self.parse_pipe()
        if self.accept("kw", "elif"):
            return n.If(cond, then, self._parse_if())
        if self.accept("kw", "else"):
            else_ = self.parse_pipe()
            self.expect("kw", "end")
            return n.If(cond, then, else_)
        self.expect("kw", "end")
        return n.If(cond, then, None)

    def _parse_object(self) -> n.Node:
        entries: list[n.ObjectEntry] = []
        while not self.accept("op", "}"):
            entries.append(self._parse_entry())
            if not self.accept("op", ","):
                self.expect("op", "}")
                break
        return n.MakeObject(tuple(entries))

    def _parse_entry(self) -> n.ObjectEntry:
        token = self.advance()
        key: n.Node
        if token.kind in ("ident", "kw"):
            key = n.Literal(token.value)
        elif token.kind == "var":
            if not self.accept("op", ":"):
                return n.ObjectEntry(n.Literal(token.value), n.Var(token.value))
            return n.ObjectEntry(n.Var(token.value), self._object_value())
        elif token.kind == "str":
            key = self.parse_string(token)
        elif token.kind == "op" and token.value == "(":
            key = self.parse_pipe()
            self.expect("op", ")")
            self.expect("op", ":")
            return n.ObjectEntry(key, self._object_value())
        else:
            raise JqSyntaxError(f"unexpected {token.value!r} in object")
        if self.accept("op", ":"):
            return n.ObjectEntry(key, self._object_value())
        return n.ObjectEntry(key, None)

    def _object_value(self) -> n.Node:
        return self.parse_pipe(no_comma=True, no_as=True)


def _binary_node(op: str, left: n.Node, right: n.Node) -> n.Node:
    if op == ",":
        return n.Comma(left, right)
    if op == "//":
        return n.Alternative(left, right)
    if op == "and":
        return n.And(left, right)
    if op == "or":
        return n.Or(left, right)
    if op.endswith("=") and op not in ("==", "!=", "<=", ">="):
        return n.Assign(op[:-1], left, right)
    return n.BinOp(op, left, right)

