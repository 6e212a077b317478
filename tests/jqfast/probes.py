"""Programs that probe the semantics the fast path must get exactly right, each checked
against libjq on every value of PROBE_INPUTS (errors included)."""

from __future__ import annotations

from typing import Any

PROBE_INPUTS: list[Any] = [
    {"a": 1, "b": [1, 2.5, "x", None], "c": {"d": "é"}, "key": "k", "value": 1.0},
    {"a": {"b": 2}, "b": -0.0, "c": "1.50", "k k": 100000000000000000000001},
    [3, 1.0, 2, "a", None, True, [1], {"a": 1}, -0.0, 1e17],
    [{"a": 2, "b": 1}, {"a": 1, "b": 2}, {"a": 1, "b": 0}],
    ["a", "b,c", "", "é😀", "A"],
    "aBc,dé",
    1.0, -2.5, 0, 2**64 + 1, 1e300, 1e-7, 12345678901234567890,
    None, True, False, [], {},
]

PROBES = [
    # paths, indices, slices
    ".", ".a", ".b", ".a.b", ".[0]", ".[-1]", ".[1.5]", ".[-1.5]", ".[100]", '.["a"]', '."a"',
    ".[1:]", ".[:-1]", ".[1.2:2.7]", ".[-10:]", ".[3:1]", ".[:1.5]", ".b[1:]", ".[]",
    ".[]?", ".a?", ".a.b?", ".[0]?", '.["a"]?', "[.[]?.a?]", "[(1, {\"a\": 2}).a?]",
    "first", "last", "nth(1)", ".[null:null]?", "try .[\"a\":] catch .",
    # construction and order
    "{a: (1,2), b: (3,4)}", "{(\"x\",\"y\"): (1,2)}", "{a, b}", "{\"a\", key}",
    "[.[]?, 1]", "[(1,2) + (10,20)]", "\"a\\(1,2)b\\(3,4)\"", "\"v=\\(.)\"",
    "{(.a|tostring): 1}?", "[.[]? | {k: .}]", "{a: 1} + {a: 2, b: 3}",
    # numbers and their text
    "tostring", "tojson", "[.[]? | tostring]", ". + 0 | tostring", "-. | tostring",
    "length | tostring", "1.0, 1.50, 1e2, -0, -1.0, 100000000000000000000001 | tostring",
    "[1/2, 3/1, 1.5*2, 0.1+0.2, 1e16*1, 1e-5*1] | tostring", ". * 1", "-(0.5 - 0.5) | tostring",
    "[.[]? | . % 3]?", "5 % -3, -5 % 3, 5.5 % 2, 1e300 % 7", "1 / 0", ". % 0",
    "[. == 1, . < 1, . > 1.0, . == 1.0]", "tonumber?", "[.[]? | tonumber?]",
    "\"1.50\", \"-0\", \"1e2\", \"+5\", \" 1\", \"0x10\" | tonumber | tostring",
    # comparison order
    "sort?", "[.[]?] | sort", "[null, false, true, 0, \"\", [], {}] | sort",
    "[{\"a\":1,\"b\":2}, {\"a\":1}, {\"b\":0}, [2], [1,3]] | sort", "unique?", "min?", "max?",
    "[.[]?] | [min, max]", "[.[]?] | sort_by(type)", "[.[]?] | group_by(type) | length",
    "sort_by(.a)?", "sort_by(.a, .b)?", "min_by(.b)?", "max_by(.a)?", "unique_by(.a)?",
    # arithmetic errors and text
    ". + 1", ". - 1", ". * 2", ". / 2", "null + .", ". + null", "[.[]?] - [1, \"a\"]",
    "{} * .", ". * {\"a\": {\"z\": 1}}", "\"ab\" * (0, 0.5, 1.5, -1)", ". / \",\"",
    "-.", "-(.[]?)", ". - .",
    # truthiness, alternatives, conditionals
    "not", "[.[]? | not]", ". // \"d\"", "(.a, .b) // 3", "[(null, false) // (3, 4)]",
    ".a // error(\"x\")", "(1, error(\"x\")) // 2", "if . then 1 else 2 end", "if . then 1 end",
    "if .a then 1 elif .b then 2 else 3 end", "[(true, false) and (true, false)]",
    "[(true, false) or (true, false)]", "(.a, .b) | select(. != null)",
    "first((.a, .b) | select(. > 1))",
    # builtins
    "length", "keys", "keys_unsorted", "has(\"a\")", "has(0)", "has(-0.5)", "type", "add",
    "add(.[]?)", "join(\",\")", "join(1)", "map(. + 1)", "map(type)",
    "to_entries", "from_entries", "with_entries(.value |= tostring)", "ascii_downcase",
    "ascii_upcase", "split(\",\")", ". / \"\"", "startswith(\"a\")", "endswith(\"é\")",
    "ltrimstr(\"a\")", "rtrimstr(\"c\")", "trimstr(\"a\")", "contains(\"B\")", "contains([1])",
    "inside([1, 2, [1]])", "in({\"a\": 1})", "reverse", "abs", "values", "nulls", "scalars",
    "iterables", "[.[]? | numbers]", "[range(3)]", "[range(1; 3)]", "[range(0.5; 2) | tostring]",
    "[range(0, 1; 3, 4)]", "[range(2; 5)]", "[range(3; 1)]", "[range(-2; 2) | tostring]",
    "[range(.a?; 3)]?", "[range(2; .a?)]?", "{x: [range(3) | {n: (\"i \" + tostring), q: .}]}",
    "[range(1; 3) | . * 1e16 | {v: .}]", "[.[]? | \"k\" + .]", "[.[]? | 10 - .]",
    "[.[]? | {a: ., b: type}]", "[.[]? | {a: .}]", "{a: error(\"x\"), b: 1}",
    "[.[]? | \"n\" + tostring]", "{\"é\": (1 / 3), b: (3 * 1e17), c: null, d: .}",
    "[{a: (1 / 2), b: [1.0, 3e17, {d: (4 / 2)}], c: true}, {\"k é\": \"é\"}]",
    "[.[]? | select(. != null) | {v: (1 / .)}]",
    "[limit(2; .[]?)]", "[limit(1, 2; 5, 6)]", "limit(-1; 1)",
    "[first(.[]?)]", "isempty(.[]?)", "any", "all", "any(. == 1)", "all(.[]?; . != null)",
    "[.[]?] | any(. == 1)", "error", "error(\"boom\")", "error({a: 1})", "error(null)",
    "try error(\"x\") catch .", "try error({a: 1}) catch .a", "[.[]? | try error(.) catch .]",
    "[try (1, error(\"x\"), 2) catch .]", "[(1, error(\"x\"), 2)?]", "empty", "[empty]",
    # variables
    ". as $x | [$x, $x]", ".a as $x | .b as $y | [$x, $y]", "[.[]? as $x | $x] | length",
    "1 + 2 as $x | $x * 10", "[1, 2 as $x | $x]", ". as $x | {$x}",
    # assignment
    ".a = 1", ".a.b = 1", ".[0] = 1", ".a |= . + 1", ".a += 1", ".b -= 1", ".a *= 2",
    ".trace += [\"x\"]", ".a //= 3", ".a.b //= 3", ".[2] = 1", ".a = (1, 2)", ". += 1",
    ".c |= length", ".a |= empty",
    # precedence
    "-1 + 2", "-null * 0", "1, 2 | . * 10", "1 // 2 as $x | $x + 10", "-\"a\"?", "try -\"a\"",
    "[.[]? | -.?]", "1 as $x | 2 | . + $x", "{a: 1 | 2, b: 3}", "{a: -1 * 2}",
]
