"""Writes `webpipe/syntax/lark_tables.py`, the parser Lark's standalone tool generates from
`grammar/webpipe.lark`, whose LALR table and contextual-lexer scanners the parse driver
(driver.py) runs.

Run `python -m webpipe.syntax.regen` after every change to the grammar; tests/syntax/
test_tables.py fails while the committed file is stale. Regenerating with another Lark
release copies that release's runtime into the file, and the driver reads a few of its
attributes (the table, the per-state scanners): test_driver.py shows whether they moved.
The tool is Lark's documented command line (`python -m lark.tools.standalone`), called with
the options `parser._lark()` gives Lark itself, so the driver and Lark read one grammar the
same way. Its output is MPL-2.0 (the notice at its top; spec/decisions.md "Front end").

Lark numbers the automaton's states as its sets of item objects iterate, which changes from
run to run; so that one grammar always gives one file, the table is renumbered here:
symbols by name, states in breadth-first order from the start state, following
transitions by symbol name. A last line records the
grammar's SHA-256, so staleness shows whatever Lark version is installed.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import os
import pickle
import subprocess
import sys
import zlib
from collections import deque
from pathlib import Path
from typing import Any

TABLES = Path(__file__).resolve().parent / "lark_tables.py"
# a tool for the source checkout: it does not import the parser, which needs the file it writes
GRAMMAR = Path(__file__).resolve().parents[2] / "grammar" / "webpipe.lark"
# the options `parser._lark()` gives Lark, and `-c`: the tables as one compressed string,
# which Python compiles in ~80 ms where the same tables as literals take ~350 ms (what each
# start pays where bytecode is not cached, as under PYTHONDONTWRITEBYTECODE)
OPTIONS = ("-s", "start", "-l", "contextual", "--regex", "--propagate_positions", "-c")


def grammar_digest(grammar: Path) -> str:
    """The SHA-256 the generated file records for the grammar it was made from."""
    return hashlib.sha256(grammar.read_bytes()).hexdigest()


def generate(grammar: Path) -> str:
    """The text of `lark_tables.py` for `grammar`, made by the installed Lark."""
    # a fixed string-hash seed for whatever else of the output follows set order; the
    # table's own numbering is made canonical below (module docstring)
    done = subprocess.run(
        [sys.executable, "-m", "lark.tools.standalone", *OPTIONS, str(grammar)],
        capture_output=True, text=True, check=False, env={**os.environ, "PYTHONHASHSEED": "0"})
    if done.returncode != 0:
        raise RuntimeError(f"Lark's standalone tool failed on {grammar}:\n{done.stderr}")
    lines = done.stdout.splitlines()
    for name in ("DATA", "MEMO"):  # each printed on the line after `NAME = (`
        at = lines.index(f"{name} = (") + 1
        value = _unpack(lines[at])
        if name == "DATA":
            value["parser"]["parser"] = canonical(value["parser"]["parser"])
        lines[at] = _pack(value)
    return "\n".join(lines) + f'\n\nGRAMMAR_SHA256 = "{grammar_digest(grammar)}"\n'


def _unpack(line: str) -> Any:
    """A value as the tool's `-c` prints it: base64 of zlib of a pickle."""
    packed = ast.literal_eval(line)
    return pickle.loads(zlib.decompress(base64.b64decode(packed)))  # our own tool's output


def _pack(value: Any) -> str:
    """`value` as the tool prints it. It is rebuilt from its text first, so which parts
    the pickle shares follows the value, not how the tool happened to build it."""
    fresh = ast.literal_eval(repr(value))
    return repr(base64.b64encode(zlib.compress(pickle.dumps(fresh, pickle.HIGHEST_PROTOCOL))))


def canonical(table: dict[str, Any]) -> dict[str, Any]:
    """Lark's serialized parse table (`tokens`, `states`, `start_states`, `end_states`)
    with symbols numbered by name and states breadth-first from the start state."""
    names: dict[int, str] = table["tokens"]
    symbol = {old: new for new, old in enumerate(sorted(names, key=names.__getitem__))}
    states: dict[int, dict[int, tuple[int, Any]]] = table["states"]
    start = table["start_states"]["start"]
    order: dict[int, int] = {start: 0}
    queue = deque([start])
    while queue:
        for _token, (action, arg) in sorted(states[queue.popleft()].items(),
                                           key=lambda item: names[item[0]]):
            if action == 0 and arg not in order:  # a shift (or goto) to a state not seen
                order[arg] = len(order)
                queue.append(arg)
    if len(order) != len(states):
        raise RuntimeError("the parse table has states the start state does not reach")
    new_states = {
        order[old]: {symbol[token]: (action, order[arg] if action == 0 else arg)
                     for token, (action, arg) in sorted(states[old].items(),
                                                        key=lambda item: names[item[0]])}
        for old in sorted(order, key=order.__getitem__)}
    return {"tokens": {symbol[old]: name for old, name in sorted(
                names.items(), key=lambda item: symbol[item[0]])},
            "states": new_states,
            "start_states": {k: order[v] for k, v in table["start_states"].items()},
            "end_states": {k: order[v] for k, v in table["end_states"].items()}}


def main() -> None:
    TABLES.write_text(generate(GRAMMAR), encoding="utf-8")
    print(f"wrote {TABLES}")


if __name__ == "__main__":
    main()
