"""The `.wp` apps of the durable-job tests (written per test with the hooks' base URL)."""

from __future__ import annotations


def app_text(base: str, *, heartbeat_ms: int = 3000, grace_ms: int = 10000,
             sync_commit: bool = True) -> str:
    return f'''config async {{
  retryBaseMs: 10
  retryMaxMs: 50
  shutdownGraceMs: {grace_ms}
}}

config jobs {{
  heartbeatTimeoutMs: {heartbeat_ms}
  pollMs: 200
  syncCommit: {str(sync_commit).lower()}
}}

POST /signup
  |> jq: `{{k: .body.k}}`
  |> pipeline: welcome @background @durable
  |> jq: `{{ok: true}}`

pipeline welcome =
  |> jq: `{{fetchUrl: "{base}/hook", fetchMethod: "POST",
           fetchBody: {{k: .k, jobId: .job.id, attempt: .job.attempt,
                       requestId: .job.requestId}}}}`
  |> fetch: `x`

POST /two
  |> jq: `{{k: .body.k}}`
  |> pipeline: first @background @durable
  |> pipeline: second @background @durable
  |> jq: `{{ok: true}}`

pipeline first =
  |> jq: `{{fetchUrl: "{base}/hook", fetchMethod: "POST", fetchBody: {{k: (.k + "-1")}}}}`
  |> fetch: `x`

pipeline second =
  |> jq: `{{fetchUrl: "{base}/hook", fetchMethod: "POST", fetchBody: {{k: (.k + "-2")}}}}`
  |> fetch: `x`

POST /always-fails
  |> jq: `{{k: .body.k}}`
  |> pipeline: failing @background @durable @retry(1) @onError(report)
  |> jq: `{{ok: true}}`

pipeline failing =
  |> jq: `{{fetchUrl: "{base}/fail", fetchMethod: "POST",
           fetchBody: {{k: .k, attempt: .job.attempt}}}}`
  |> fetch: `x`

pipeline report =
  |> jq: `{{fetchUrl: "{base}/report", fetchMethod: "POST",
           fetchBody: {{error: .error, attempts: .attempts, location: .location,
                       k: .input.k}}}}`
  |> fetch: `x`

POST /rejected
  |> jq: `{{k: .body.k}}`
  |> pipeline: welcome @background @durable
  |> jq: `{{ok: false}}`
  |> result
    ok(422):
      |> jq: `{{ok: false}}`
'''
