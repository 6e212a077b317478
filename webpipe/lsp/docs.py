"""One-line descriptions shown by hover and completion.

`MIDDLEWARE_DOCS` has an entry for every name in `BUILTIN_MIDDLEWARE` (a test keeps them in
step); the texts summarise spec/middleware.md. `TAG_DOCS` covers `check.KNOWN_TAGS`
(spec/language.md §4.4, spec/concurrency.md) and `FLOW_DOCS` the flow-control steps.
"""

from __future__ import annotations

MIDDLEWARE_DOCS: dict[str, str] = {
    "jq": "Transform the state with a jq program; the state is `.`, the request is `$context`.",
    "handlebars": "Render an HTML string from a Handlebars template (inline or a `handlebars` "
                  "variable); `{{> name}}` partials are `handlebars` variables.",
    "mustache": "Same as `handlebars`: render an HTML string from a template.",
    "lua": "Run a Lua 5.4 chunk; its return value becomes the state.",
    "js": "Run a JavaScript snippet (QuickJS, sandboxed) with `request` and `context`; "
          "its `return` value becomes the state.",
    "pg": "Run one SQL statement on the PostgreSQL pool; the result is "
          "`{rows, rowCount}` (under `.data.<name>` with a target).",
    "fetch": "Make one outgoing HTTP request; the payload is `{response, status, headers}`.",
    "graphql": "Execute a GraphQL operation (the config, or `.query`) against the program's "
               "schema, or with `graphql(NAME)` against the remote `config graphql_NAME`.",
    "validate": "Check fields of `.body` (string/email/boolean/number rules); the first "
                "failure becomes a `validationError`.",
    "assert": "Check the shape of the whole state against a schema; the state is unchanged "
              "on success.",
    "log": "Emit one JSON access-log line after the request finishes; the state is unchanged.",
    "debug": "Print a label and the current state as pretty JSON to stdout; the state is "
             "unchanged.",
    "auth": "Session authentication on PostgreSQL: `login`, `register`, `logout`, `required`, "
            "`optional` or `type:<role>`.",
    "cache": "Cache the final output (value, content type, status) of the pipeline this step "
             "belongs to.",
    "rateLimit": "Reject requests over a per-key budget (a fixed-window counter); the state is "
                 "unchanged.",
    "stdin": "Script mode only: read stdin once as `text`, `json` or `lines`.",
    "join": "Wait for the named `@async` tasks and merge their results under `.async`.",
}

TAG_DOCS: dict[str, str] = {
    "env": "`@env(E)`: run when `WEBPIPE_ENV` is E (true when no environment is set).",
    "flag": "`@flag(a, b)`: run when every listed feature flag is on.",
    "when": "`@when(a, b)`: run when every listed request condition (`setWhen`) is set.",
    "guard": "``@guard(`jq`)``: run when the jq expression on the state is truthy.",
    "async": "`@async(name)`: run the step as a background task; `join` collects it.",
    "result": "`@result(name)`: where `pg`/`fetch`/`graphql` put their result (`.data.name`).",
    "error": "`@error(type)`: rename the step's error type.",
    "needs": "`@needs(flags)`: make the route run the `featureFlags` pipeline.",
    "timeout": "`@timeout(ms)`: deadline of each attempt of a step, of an `@async` task, "
               "or of the whole wait of a `join`.",
    "retry": "`@retry(n)`: retry a failed step up to n times (backoff with jitter, "
             "`Retry-After`).",
    "failfast": "`@failfast` on `join`: the first task to fail ends the join with its error; "
                "the others are cancelled, finished ones keep their results.",
    "background": "`@background`: run after a 2xx response (with `@async(name)`: in parallel).",
    "dedup": "`@dedup` / ``@dedup(`key`)``: concurrent calls sending the same request share "
             "one execution.",
    "detached": "`@detached` with `@async(name)`: a fire-and-forget task that is never joined.",
    "onError": "`@onError(pipeline)` with `@background`: call the pipeline when the step "
               "failed after its last attempt.",
    "first": "`@first` on `join`: the first task to succeed wins (`.asyncStatus.winner`); "
             "the others are cancelled.",
    "hedge": "`@hedge(n, ms)` on `fetch`: send an identical copy when no answer came within "
             "ms, up to n; the first success wins (`idempotent` as a third argument allows "
             "POST).",
    "durable": "`@durable` with `@background`: a Postgres job, written before the 2xx and run "
               "at least once by `webpipe serve` or `webpipe worker` (sees `.job.id`, "
               "`.job.attempt`).",
}

FLOW_DOCS: dict[str, str] = {
    "result": "Choose a branch `name(status):` by the first error type in the state "
              "(`ok` otherwise).",
    "if": "`|> if <steps> then: <steps> else: <steps> end` on the condition's truthiness.",
    "dispatch": "Run the first `case @tags:` whose tags match, else `default:`.",
    "foreach": "`|> foreach .selector <steps> end`: run the steps on each item of an array.",
    "pipeline": "`|> pipeline: name` calls a named pipeline.",
}
