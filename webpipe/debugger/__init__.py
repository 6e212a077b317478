"""The step debugger: `webpipe serve|test|run --inspect` (spec/debugger.md).

A Debug Adapter Protocol server on 127.0.0.1:5858 (`--inspect-port`): breakpoints on step
lines and `it` lines, continue/next/stepIn/stepOut/pause, the state, `.async` and
`$context` as variables, jq `evaluate`, `setVariable`. `hook.Debugger` is what the executor
calls (through `Env.debugger`, None without `--inspect`); `session` speaks DAP to the
client, `inspecting` answers the requests that read a paused request, `wire` frames the
messages.
"""

from __future__ import annotations

from webpipe.debugger.hook import DEFAULT_PORT, Debugger, run_attached

__all__ = ["DEFAULT_PORT", "Debugger", "run_attached"]
