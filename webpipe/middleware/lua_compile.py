"""A small, pure subset of Lua 5.4 compiled to Python at load (spec/lua.md "Compiled
subset").

`compile_chunk(source)` returns a function `run(request) -> JSON` for a chunk in the
subset, or None. The subset: `local` declarations, assignment to locals and to fields of
tables, numeric `for`, `while`, `repeat`, `if`, `do`, `break`, `return`, table
constructors, `request.<name>...`, literals, arithmetic, comparisons, `and`/`or`/`not`,
`..` and `#`. No function calls and no other globals: such a chunk is not compiled. The
parser follows lparser.c's grammar and operator priorities and emits Python source
directly (`lua_expr.Emitter` for expressions, `Compiler` here for statements), one Lua
local to one Python local (renamed, so Lua's block scoping holds). The generated code
calls `lua_ops`, which gives Lua's answer or raises `Fallback`; then the chunk runs in Lua
from the start (it is pure: nothing has been written). Loops spend from one work budget
(`lua_ops.WORK`), so a compiled run stays well inside the inline tier's bounds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from webpipe.middleware import lua_library, lua_ops
from webpipe.middleware.lua_expr import Emitter, Target
from webpipe.middleware.lua_lex import NotInSubset, tokens

Run = Callable[[Any], Any]
MAX_SOURCE = 16 * 1024  # longer chunks are not worth a Python function
_HELPERS: dict[str, Any] = {
    "_add": lua_ops.add, "_sub": lua_ops.sub, "_mul": lua_ops.mul, "_div": lua_ops.div,
    "_idiv": lua_ops.floor_div, "_mod": lua_ops.mod, "_pow": lua_ops.power,
    "_neg": lua_ops.neg, "_eq": lua_ops.equal, "_lt": lua_ops.less,
    "_le": lua_ops.less_equal, "_cat": lua_ops.concat, "_len": lua_ops.length,
    "_idx": lua_ops.index, "_set": lua_ops.store, "_table": lua_ops.table,
    "_Table": lua_ops.Table, "_wraps": lua_ops.wraps,
    "_for": lua_ops.for_range, "_spend": lua_ops.spend, "_jv": lua_ops.json_value,
    "_out": lua_ops.to_json, "_WORK": lua_ops.WORK,
}


def enabled() -> bool:
    """`WEBPIPE_LUA_COMPILED=0` turns compiled chunks off (every run goes to Lua)."""
    return os.environ.get("WEBPIPE_LUA_COMPILED", "1") != "0"


def compile_chunk(source: str) -> Run | None:
    """The chunk as a Python function, or None when it is not in the subset."""
    if len(source) > MAX_SOURCE:
        return None
    toks = tokens(source)
    if toks is None:
        return None
    compiler = Compiler(toks)
    try:
        compiler.chunk()
        code = compile("\n".join(compiler.lines) + "\n", "<lua>", "exec")
    except (NotInSubset, SyntaxError, RecursionError, MemoryError):
        return None
    namespace = {**_HELPERS, **lua_library.HELPERS}
    exec(code, namespace)  # our own generated source (see Compiler)
    run: Run = namespace["_run"]
    return run


_BLOCK_END = ("else", "elseif", "end", "until", None)
_PLAIN = re.compile(r"L\d+_\w+|[0-9]+|'[A-Za-z_][A-Za-z0-9_]*'")  # locals, literals


class Compiler(Emitter):
    """Recursive descent over the statements, writing the Python function's lines."""

    def chunk(self) -> None:
        self.lines.append("def _run(request):")
        self.emit("R = _jv(request)")
        self.emit("_w = [_WORK]")
        with self.block():
            self.statements()
        if self.peek().kind != "eof":
            raise NotInSubset
        self.emit("return None")

    def statements(self) -> None:
        while True:
            tok = self.peek()
            if tok.kind == "eof" or (tok.kind == "keyword" and tok.value in _BLOCK_END):
                return
            if self.at("return"):
                self.return_statement()
                return
            self.statement()

    def statement(self) -> None:
        tok = self.peek()
        handler = _STATEMENTS.get(str(tok.value)) if tok.kind in ("keyword", "op") else None
        if handler is not None:
            self.pos += 1
            handler(self)
        elif tok.kind == "keyword":
            raise NotInSubset  # function, goto...
        else:
            self.assignment()

    def empty(self) -> None:
        pass

    def return_statement(self) -> None:
        self.expect("return")
        values = [] if self.peek().kind == "eof" or self.at(";") or self.block_ends() \
            else self.expressions()
        if self.at(";"):
            self.pos += 1
        if not self.block_ends():
            raise NotInSubset
        if not values:
            self.emit("return None")
            return
        for extra in values[1:]:  # evaluated for their errors only
            self.emit(f"_ = {extra}")
        self.emit(f"return _out({values[0]})")

    def block_ends(self) -> bool:
        tok = self.peek()
        return tok.kind == "eof" or (tok.kind == "keyword" and tok.value in _BLOCK_END)

    def local(self) -> None:
        if self.at("function"):
            raise NotInSubset
        names = [self.name()]
        while self.at(","):
            self.pos += 1
            names.append(self.name())
        if self.at("<"):
            raise NotInSubset  # <const>, <close>
        values: list[str] = []
        if self.at("="):
            self.pos += 1
            values = self.expressions()
        temps = self.settle(values, len(names))
        for name, value in zip(names, temps, strict=True):
            self.emit(f"{self.declare(name)} = {value}")

    def settle(self, values: list[str], count: int) -> list[str]:
        """`count` value codes (nil-padded); extra values are evaluated, and with more
        than one target the values go to temporaries first (Lua assigns after
        evaluating them all)."""
        for extra in values[count:]:
            self.emit(f"_ = {extra}")
        values = values[:count] + ["None"] * (count - len(values))
        if count == 1:
            return values
        temps = []
        for value in values:
            temp = self.fresh()
            self.emit(f"{temp} = {value}")
            temps.append(temp)
        return temps

    def assignment(self) -> None:
        targets = [self.target()]
        while self.at(","):
            self.pos += 1
            targets.append(self.target())
        self.expect("=")
        if sum(1 for t in targets if t[0] == "index") > 1:
            raise NotInSubset  # the order of stores to aliased tables is Lua's
        fixed: list[Target] = []
        for target in targets:  # a store's table and key before any assignment
            if target[0] == "index" and len(targets) > 1:
                obj, key = self.fresh(), self.fresh()
                self.emit(f"{obj} = {target[1]}")
                self.emit(f"{key} = {target[2]}")
                target = ("index", obj, key)
            fixed.append(target)
        values = self.settle(self.expressions(), len(targets))
        for target, value in zip(fixed, values, strict=True):
            if target[0] == "local":
                self.emit(f"{target[1]} = {value}")
            else:
                self.store(target[1], target[2], value)

    def store(self, obj: str, key: str, value: str) -> None:
        """`obj[key] = value`; the next item of a sequence inline when the table and key
        are plain names or literals (cheap to repeat), else `lua_ops.store`."""
        if not (_PLAIN.fullmatch(obj) and _PLAIN.fullmatch(key)):
            self.emit(f"_set({obj}, {key}, {value}, _w)")
            return
        temp = self.fresh()
        self.emit(f"{temp} = {value}")
        integer = "" if self.is_int(key) else f"type({key}) is int and "
        self.emit(f"if type({obj}) is _Table and {integer}{key} == len({obj}.items) + 1 "
                  f"and {temp} is not None and not {obj}.rest and _w[0] > 0:")
        self.emit(f"    {obj}.items.append({temp})")
        self.emit("    _w[0] -= 1")
        self.emit("else:")
        self.emit(f"    _set({obj}, {key}, {temp}, _w)")

    def target(self) -> Target:
        target = self.suffixed()[1]
        if target is None or target == ("local", "R"):
            raise NotInSubset  # a call statement, or assigning a global
        return target

    def if_statement(self) -> None:
        cond = self.condition()
        self.expect("then")
        with self.block(f"if {cond}:"):
            self.statements()
        while self.at("elseif"):
            self.pos += 1
            cond = self.condition()
            self.expect("then")
            with self.block(f"elif {cond}:"):
                self.statements()
        if self.at("else"):
            self.pos += 1
            with self.block("else:"):
                self.statements()
        self.expect("end")

    def costed(self, line: int, first_token: int) -> None:
        """Write an iteration's cost into `line`: one unit per token of the loop (its
        condition and body), about what one iteration can do, so that a loop with a big
        body gets fewer iterations out of the work budget."""
        cost = 1 + self.pos - first_token
        self.lines[line] = self.lines[line].replace("COST", str(cost))

    def while_statement(self) -> None:
        first = self.pos
        self.emit("while True:")
        self.depth += 1
        spend = len(self.lines)
        self.emit("_spend(_w, COST)")
        self.emit(f"if not ({self.condition()}):")
        self.emit("    break")
        self.depth -= 1
        self.expect("do")
        self.loop_body("end")
        self.costed(spend, first)

    def loop_body(self, closing: str) -> None:
        self.loops += 1
        self.depth += 1
        mark = len(self.lines)
        with self.block():
            self.statements()
            self.expect(closing)
        if len(self.lines) == mark:
            self.emit("pass")
        self.depth -= 1
        self.loops -= 1

    def repeat_statement(self) -> None:
        first = self.pos
        self.emit("while True:")
        self.depth += 1
        spend = len(self.lines)
        self.emit("_spend(_w, COST)")
        self.loops += 1
        with self.block():  # `until` sees the body's locals
            self.statements()
            self.expect("until")
            self.emit(f"if {self.condition()}:")
            self.emit("    break")
        self.loops -= 1
        self.depth -= 1
        self.costed(spend, first)

    def for_statement(self) -> None:
        var = self.name()
        if not self.at("="):
            raise NotInSubset  # the generic `for ... in` calls an iterator
        self.pos += 1
        start = self.expression()
        self.expect(",")
        limit = self.expression()
        step = "1"
        if self.at(","):
            self.pos += 1
            step = self.expression()
        self.expect("do")
        self.scopes.append({})
        python = self.declare(var)
        if not self.assigned_later(var):
            self.ints.add(python)
        header, first = len(self.lines), self.pos
        self.emit(f"for {python} in _for({start}, {limit}, {step}, _w, COST):")
        self.loop_body("end")
        self.costed(header, first)
        self.scopes.pop()

    def do_statement(self) -> None:
        with self.block():
            self.statements()
        self.expect("end")

    def break_statement(self) -> None:
        if not self.loops:
            raise NotInSubset
        self.emit("break")

    # -- expressions ----------------------------------------------------------------
_STATEMENTS: dict[str, Callable[[Compiler], None]] = {
    ";": Compiler.empty, "local": Compiler.local, "if": Compiler.if_statement,
    "while": Compiler.while_statement, "repeat": Compiler.repeat_statement,
    "for": Compiler.for_statement, "do": Compiler.do_statement,
    "break": Compiler.break_statement,
}
