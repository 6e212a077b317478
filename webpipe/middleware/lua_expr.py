"""The expression half of the compiled Lua subset's compiler (spec/lua.md "Compiled
subset"): `Emitter` holds the tokens, the Python lines written so far and Lua's scopes, and
compiles expressions (lparser.c's `subexpr` with its priority table) into Python
expressions over `lua_ops`' helpers. Expressions have no side effects, so the order
Python evaluates them in never shows; `and`/`or`/`not` keep Lua's truthiness (only nil and
false are false) with a walrus temporary. `lua_compile.Compiler` adds the statements.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from webpipe.middleware.lua_lex import NotInSubset, Token
from webpipe.middleware.lua_library import CONSTANTS, FUNCTIONS, TABLES
from webpipe.middleware.lua_ops import MAX_INTEGER, MIN_INTEGER

# lparser.c's priority table: (left, right)
_BINARY = {"or": (1, 1), "and": (2, 2), "<": (3, 3), ">": (3, 3), "<=": (3, 3),
           ">=": (3, 3), "~=": (3, 3), "==": (3, 3), "..": (9, 8), "+": (10, 10),
           "-": (10, 10), "*": (11, 11), "/": (11, 11), "//": (11, 11), "%": (11, 11),
           "^": (14, 13)}
_UNARY_PRIORITY = 12
_CALLS = {"+": "_add", "-": "_sub", "*": "_mul", "/": "_div", "//": "_idiv", "%": "_mod",
          "^": "_pow", "==": "_eq", "<": "_lt", "<=": "_le"}
# a target of an assignment: ("local", python name) or ("index", object, key)
Target = tuple[str, ...]


class Emitter:
    """Tokens, output lines and scopes, and the expressions."""

    def __init__(self, toks: list[Token]) -> None:
        self.toks, self.pos = toks, 0
        self.lines: list[str] = []
        self.depth = 1
        self.scopes: list[dict[str, str]] = []
        self.count = 0
        self.loops = 0
        # codes known to be integers: literals, `for` variables the chunk never assigns,
        # and checked integer arithmetic of them (spelled out inline, without a call)
        self.ints: set[str] = set()

    # -- tokens ---------------------------------------------------------------------
    def peek(self) -> Token:
        return self.toks[self.pos]

    def at(self, value: object) -> bool:
        tok = self.toks[self.pos]
        return tok.kind in ("op", "keyword") and tok.value == value

    def take(self) -> Token:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def expect(self, value: object) -> None:
        if not self.at(value):
            raise NotInSubset
        self.pos += 1

    def name(self) -> str:
        tok = self.take()
        if tok.kind != "name":
            raise NotInSubset
        return str(tok.value)

    # -- output ---------------------------------------------------------------------
    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    def fresh(self, hint: str = "t") -> str:
        self.count += 1
        return f"_{hint}{self.count}"

    @contextmanager
    def block(self, header: str | None = None) -> Iterator[None]:
        """A nested Python block (when `header` is given) and a Lua scope."""
        if header is not None:
            self.emit(header)
            self.depth += 1
        mark = len(self.lines)
        self.scopes.append({})
        yield
        self.scopes.pop()
        if header is not None:
            if len(self.lines) == mark:
                self.emit("pass")
            self.depth -= 1

    def declare(self, name: str) -> str:
        python = f"L{self.count + 1}_{name}"
        self.count += 1
        self.scopes[-1][name] = python
        return python

    def lookup(self, name: str) -> str:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        if name == "request":
            return "R"
        raise NotInSubset  # any other global: a library, a flag function, a nil...

    # -- chunk and statements -------------------------------------------------------
    def expressions(self) -> list[str]:
        values = [self.expression()]
        while self.at(","):
            self.pos += 1
            values.append(self.expression())
        return values

    def expression(self) -> str:
        return self.subexpression(0)[0]

    def condition(self) -> str:
        code, is_bool = self.subexpression(0)
        return code if is_bool else self.truth(code)

    def truth(self, code: str) -> str:
        temp = self.fresh()
        return f"(({temp} := {code}) is not None and {temp} is not False)"

    def subexpression(self, limit: int) -> tuple[str, bool]:
        """lparser.c's `subexpr`: the code and whether it is a Python bool."""
        tok = self.peek()
        if tok.kind in ("op", "keyword") and tok.value in ("not", "-", "#"):
            self.pos += 1
            operand, is_bool = self.subexpression(_UNARY_PRIORITY)
            left, left_bool = self.unary(str(tok.value), operand, is_bool)
        else:
            left, left_bool = self.simple(), False
        while True:
            tok = self.peek()
            op = str(tok.value) if tok.kind in ("op", "keyword") else ""
            if op in ("&", "|", "~", "<<", ">>"):
                raise NotInSubset
            priority = _BINARY.get(op)
            if priority is None or priority[0] <= limit:
                return left, left_bool
            self.pos += 1
            right, right_bool = self.subexpression(priority[1])
            left, left_bool = self.binary(op, left, left_bool, right, right_bool)

    def unary(self, op: str, operand: str, is_bool: bool) -> tuple[str, bool]:
        if op == "not":
            if is_bool:
                return f"(not {operand})", True
            temp = self.fresh()
            return f"(({temp} := {operand}) is None or {temp} is False)", True
        if op == "#":
            return f"_len({operand})", False
        return f"_neg({operand})", False

    def binary(self, op: str, left: str, left_bool: bool, right: str,
               right_bool: bool) -> tuple[str, bool]:
        both = left_bool and right_bool
        if op in ("and", "or"):
            if left_bool:  # a real bool: Python's and/or give Lua's values
                return f"({left} {op} {right})", both
            temp = self.fresh()
            test = f"(({temp} := {left}) is not None and {temp} is not False)"
            if op == "and":
                return f"({right} if {test} else {temp})", False
            return f"({temp} if {test} else {right})", False
        if op == "..":
            return f"_cat({left}, {right}, _w)", False
        if op == "~=":
            return f"(not _eq({left}, {right}))", True
        if op in (">", ">="):  # a > b is b < a (pure operands: the order never shows)
            return f"{_CALLS['<' if op == '>' else '<=']}({right}, {left})", True
        if op in ("+", "-", "*") and self.is_int(left) and self.is_int(right):
            temp = self.fresh()
            code = (f"({temp} if {MIN_INTEGER} <= ({temp} := {left} {op} {right}) <= "
                    f"{MAX_INTEGER} else _wraps())")
            self.ints.add(code)
            return code, False
        return f"{_CALLS[op]}({left}, {right})", op in ("==", "<", "<=")

    def is_int(self, code: str) -> bool:
        return code in self.ints or code.isdigit()

    def assigned_later(self, name: str) -> bool:
        """Whether the name may be assigned from here on (conservative: any `name =` or
        `name ,` in the rest of the chunk, whatever it refers to)."""
        toks = self.toks
        return any(tok.kind == "name" and tok.value == name and toks[i + 1].kind == "op"
                   and toks[i + 1].value in ("=", ",")
                   for i, tok in enumerate(toks[self.pos:-1], self.pos))

    def simple(self) -> str:
        tok = self.peek()
        if tok.kind == "number" or tok.kind == "string":
            self.pos += 1
            return repr(tok.value)
        if tok.kind == "keyword" and tok.value in ("nil", "true", "false"):
            self.pos += 1
            return {"nil": "None", "true": "True", "false": "False"}[str(tok.value)]
        if self.at("{"):
            return self.constructor()
        if tok.kind == "keyword" or self.at("..."):
            raise NotInSubset  # function literals, varargs
        return self.suffixed()[0]

    def suffixed(self) -> tuple[str, Target | None]:
        """A name or parenthesised expression and its `.name` / `[key]` suffixes."""
        target: Target | None
        if self.at("("):
            self.pos += 1
            code, target = f"({self.expression()})", None
            self.expect(")")
        else:
            name = self.name()
            if (name in TABLES or name in FUNCTIONS) and self.is_global(name):
                code, target = self.library(name), None
            else:
                code = self.lookup(name)
                target = ("local", code)
        while True:
            if self.at("."):
                self.pos += 1
                key = repr(self.name())
            elif self.at("["):
                self.pos += 1
                key = self.expression()
                self.expect("]")
            elif self.at("(") or self.at(":") or self.at("{") or \
                    self.peek().kind == "string":
                raise NotInSubset  # a call
            else:
                return code, target
            target = ("index", code, key)
            code = f"_idx({code}, {key})"

    def is_global(self, name: str) -> bool:
        return not any(name in scope for scope in self.scopes)

    def library(self, name: str) -> str:
        """A constant or a call of the library functions the subset knows."""
        if name in TABLES:
            self.expect(".")
            name = f"{name}.{self.name()}"
            if name in CONSTANTS:
                return CONSTANTS[name]
        entry = FUNCTIONS.get(name)
        if entry is None:
            raise NotInSubset
        helper, _, fewest, most = entry
        self.expect("(")
        args = [] if self.at(")") else self.expressions()
        self.expect(")")
        if not fewest <= len(args) <= most:
            raise NotInSubset  # an error, or arguments Lua ignores
        return f"{helper}({', '.join(args)})"

    def constructor(self) -> str:
        self.expect("{")
        items: list[str] = []
        fields: list[str] = []
        computed = False
        while not self.at("}"):
            if self.at("["):
                self.pos += 1
                key = self.expression()
                self.expect("]")
                self.expect("=")
                fields.append(f"({key}, {self.expression()})")
                computed = True
            elif self.peek().kind == "name" and self.toks[self.pos + 1].value == "=" \
                    and self.toks[self.pos + 1].kind == "op":
                key = repr(self.name())
                self.pos += 1
                fields.append(f"({key}, {self.expression()})")
            else:
                items.append(self.expression())
            if not (self.at(",") or self.at(";")):
                break
            self.pos += 1
        self.expect("}")
        if computed and items:
            raise NotInSubset  # see lua_ops.table
        if not items and not fields:
            return "_Table()"
        return f"_table(_w, ({''.join(i + ', ' for i in items)}), " \
               f"({''.join(f + ', ' for f in fields)}))"
