"""`validate` over real HTTP (issue 22, outcome 6): every rule of a one-line schema is
applied, a body that is not a JSON object fails with the validation envelope, and a schema
the reader cannot fully read is a `webpipe check` error with a caret (serve answers the
step's `validateError` envelope instead of passing the request through)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.hostile.harness import serve

APP = """POST /people
  |> validate: `{ name: string(1..60), age: number }`
  |> result
    ok(201):
      |> jq: `{ name: .body.name, age: .body.age }`
    validationError(422):
      |> jq: `.errors[0]`

POST /broken
  |> validate: `{ name: string(1..60) age: number }`
  |> result
    ok(201):
      |> jq: `{ passed: true }`
    validateError(500):
      |> jq: `{ type: .errors[0].type, message: .errors[0].message }`
"""


def failure(field: str, rule: str, message: str) -> dict[str, str]:
    return {"type": "validationError", "field": field, "context": field, "rule": rule,
            "message": message}


async def test_every_rule_and_every_body_shape_over_http(tmp_path: Path) -> None:
    not_object = "Request body must be a JSON object, got {}"
    cases = [
        ({"json": {"name": "a", "age": 3}}, 201, {"name": "a", "age": 3}),
        ({"json": {"name": "a", "age": "x"}}, 422,
         failure("age", "required", "Field 'age' is required and must be a number")),
        ({"json": {"name": "", "age": 3}}, 422, failure(
            "name", "required", "Field 'name' is required and must be a non-empty string")),
        ({"json": {"age": 3}}, 422, failure(
            "name", "required", "Field 'name' is required and must be a non-empty string")),
        ({"content": b"null", "headers": {"content-type": "application/json"}}, 422,
         failure("body", "object", not_object.format("null"))),
        ({"json": []}, 422, failure("body", "object", not_object.format("array"))),
        ({"json": "x"}, 422, failure("body", "object", not_object.format("string"))),
        ({"json": 7}, 422, failure("body", "object", not_object.format("number"))),
        ({"content": b"name=a&age=3", "headers": {"content-type": "text/plain"}}, 422,
         failure("body", "object", not_object.format("string"))),
        # a form body is an object of strings: `age` is not a number
        ({"data": {"name": "a", "age": "3"}}, 201, {"name": "a", "age": 3}),
        ({"data": {"name": "a", "age": "x"}}, 422,
         failure("age", "required", "Field 'age' is required and must be a number")),
        ({}, 422, failure("name", "required",
                          "Field 'name' is required and must be a non-empty string")),
    ]
    async with serve(tmp_path, APP) as served, httpx.AsyncClient(base_url=served.base) as client:
        for request, status, body in cases:
            answer = await client.post("/people", **request)  # type: ignore[arg-type]
            assert (answer.status_code, answer.json()) == (status, body), request


async def test_an_unreadable_schema_never_passes_a_request(tmp_path: Path) -> None:
    async with serve(tmp_path, APP) as served, httpx.AsyncClient(base_url=served.base) as client:
        answer = await client.post("/broken", json={"name": "a", "age": 3})
    assert answer.status_code == 500
    assert answer.json()["type"] == "validateError"
    assert "expected `,` or a new line before the next field" in answer.json()["message"]
    assert "validate: cannot read the schema" in served.log.read_text()


def test_check_reports_the_unreadable_schema_with_a_caret(tmp_path: Path) -> None:
    app = tmp_path / "app.wp"
    app.write_text(APP)
    done = subprocess.run([sys.executable, "-m", "webpipe", "check", str(app)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0].endswith("app.wp:10:39: error: validate: cannot read the schema: "
                             "expected `,` or a new line before the next field")
    assert lines[1:3] == ["  |> validate: `{ name: string(1..60) age: number }`",
                          "                                      ^"]
    assert "Traceback" not in done.stderr
