"""`js` steps (issue 18 outcome 4, spec/js.md): the reference's semantics on QuickJS in a
sandbox worker, run through the test runner on real programs (the sandbox pool, real
QuickJS, a real embedded Postgres for `executeSql`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.middleware.pg_server import socket_dir
from tests.middleware.test_pg import app_dir, pg_url  # noqa: F401  (the session's server)
from webpipe.program import program_from_text
from webpipe.testing.runner import CaseResult, run_tests


def run(text: str) -> list[CaseResult]:
    async def go() -> list[CaseResult]:
        env = program_from_text(text)
        try:
            return await run_tests(env)
        finally:
            await env.aclose()  # its sandbox workers and pg pool

    return asyncio.run(go())


def check(text: str) -> None:
    results = run(text)
    assert results
    failed = [(r.name, r.message) for r in results if not r.passed]
    assert not failed, failed


def test_request_in_return_out_undefined_is_null(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WP_JS_GREETING", "hi")
    check('''
GET /js/:id
  |> js: `
    const id = request.params.id;
    return { id: parseInt(id), name: request.query.name, missing: undefined,
             stamp: new Date(0).toISOString(), env: getEnv("WP_JS_GREETING"),
             unset: getEnv("WP_JS_NOT_SET"), big: 2n ** 70n };
  `

describe "js"
  it "maps the request"
    when calling GET /js/5?name=ann
    then output `.id` equals 5
    and output `.name` equals "ann"
    and output `.missing` equals null
    and output `has("missing")` equals true
    and output `.stamp` equals "1970-01-01T00:00:00.000Z"
    and output `.env` equals "hi"
    and output `.unset` equals null
    and output `.big` equals "1180591620717411303424"
  it "undefined becomes null"
    when calling GET /js/6
    then output `.name` equals null
''')


def test_no_return_gives_null_and_flags_carry_to_later_steps() -> None:
    check('''
GET /flags
  |> js: `setFlag("beta", true); setWhen("fast", true);`
  |> js: `return { beta: getFlag("beta"), fast: getWhen("fast"), other: getFlag("x") }`

GET /nothing
  |> js: `const a = 1;`

describe "js"
  it "flags"
    when calling GET /flags
    then output equals `{ "beta": true, "fast": true, "other": false }`
  it "nothing"
    when calling GET /nothing
    then output equals `null`
''')


def test_no_file_process_or_network_access() -> None:
    check('''
GET /escape
  |> js: `
    return [typeof require, typeof process, typeof std, typeof os, typeof fetch,
            typeof XMLHttpRequest, typeof setTimeout, typeof eval, typeof Function,
            typeof globalThis.import];
  `

describe "sandbox"
  it "has none of them"
    when calling GET /escape
    then output `unique` equals `["undefined"]`
''')


def test_runtime_error_is_a_js_error_envelope_with_the_wp_line() -> None:
    [result] = run('''GET /boom
  |> js: `
    const a = 1;
    return null.x;
  `
  |> result
    ok(200):
      |> jq: `.`
    jsError(500):
      |> jq: `{ type: .errors[0].type, message: .errors[0].message }`

describe "js"
  it "fails"
    when calling GET /boom
    then status is 500
    and output `.type` equals "jsError"
    and output `.message` contains "TypeError"
    and output `.message` contains ":4:"
''')
    assert result.passed, (result.message, result.outcome)


def test_syntax_error_is_reported_at_load_at_its_line() -> None:
    env = program_from_text('GET /x\n  |> js: `\n    const a = 1;\n    const b = ;\n  `\n')
    [found] = [d for d in env.diagnostics if d.code == "bad-config"]
    assert "JavaScript syntax error" in found.message
    assert (found.span.line, found.span.column) == (4, 15)  # the `;` QuickJS names


def test_scripts_folder_is_preloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dates.js").write_text("({ year: (iso) => iso.slice(0, 4) })")
    (tmp_path / "ignored.lua").write_text("return {}")
    monkeypatch.setenv("WEBPIPE_SCRIPTS_DIR", str(tmp_path))
    check('''
GET /year
  |> js: `return { year: dates.year("2024-05-01"), lua: typeof ignored }`

describe "scripts"
  it "are globals named after their files"
    when calling GET /year
    then output equals `{ "year": "2024", "lua": "undefined" }`
''')


def test_budgets_give_timeout_and_limit_error_envelopes() -> None:
    check('''
config limits {
  jsTimeoutMs: 300
  jsMemoryMb: 32
}

GET /spin
  |> js: `while (true) {}`

GET /spin-tagged
  |> js: `while (true) {}` @timeout(100)

GET /hog
  |> js: `const a = []; while (true) { a.push("x".repeat(1000) + a.length); }` @timeout(20000)

describe "bounds"
  it "time"
    when calling GET /spin
    then output `.errors[0].type` equals "timeout"
    and output `.errors[0].message` contains "300 ms"
  it "step timeout"
    when calling GET /spin-tagged
    then output `.errors[0].message` contains "100 ms"
  it "memory"
    when calling GET /hog
    then output `.errors[0].type` equals "limitError"
''')


def test_execute_sql_uses_the_apps_pool(pg_url: str) -> None:  # noqa: F811
    pg_socket = socket_dir(pg_url)
    check(f'''
config pg {{
  host: "{pg_socket}"
  port: 5432
}}

GET /sql
  |> js: `
    const r = executeSql("SELECT $1::int + 1 AS n, $2::text AS s", [41, "x"]);
    let failed = null;
    try {{ executeSql("SELECT nope FROM nowhere", []); }} catch (e) {{ failed = String(e); }}
    return {{ n: r.rows[0].n, s: r.rows[0].s, count: r.rowCount, failed }};
  `

describe "sql"
  it "runs"
    when calling GET /sql
    then output `.n` equals 42
    and output `.s` equals "x"
    and output `.count` equals 1
    and output `.failed` contains "nowhere"
''')
