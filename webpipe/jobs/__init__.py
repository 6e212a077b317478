"""Durable `@background` steps: Postgres jobs run by pgqueuer (issue 16, spec/jobs.md).

`identity` decides which steps are durable and names them (file, line, source hash);
`enqueue` writes a request's jobs before its 2xx response is sent; `consumer` runs them in
`webpipe serve` or `webpipe worker`; `admin` and `cli` are `webpipe jobs …`. pgqueuer and
asyncpg are imported only in these modules, and only when a job is written or run.
"""
