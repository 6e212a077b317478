"""The shared runner for embedded code (jq today, Lua and JavaScript next): spec/sandbox.md.

`SandboxPool` (pool.py) owns up to `config limits { sandboxWorkers }` worker processes
(`python -m webpipe.sandbox.worker`), started on first use and killed when the app closes.
`await pool.run(kind, payload, timeout_s=, memory_mb=, callback=)` runs `HANDLERS[kind]`
(worker.py) in a worker: past the time budget the worker is SIGKILLed and replaced; past the
memory budget (RLIMIT_AS in the worker) the run fails with `SandboxMemory`; a handler's own
error is a `SandboxError`. A handler may call back into the server during a run
(`channel.call(name, payload)`, answered by the run's async `callback`). Frames are
length-prefixed orjson over the worker's stdin/stdout (frames.py). Import from the modules
(`webpipe.sandbox.pool`): this file imports nothing, so a worker starts without asyncio.
"""

