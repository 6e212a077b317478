"""Script mode (spec/language.md §9.3): run `pipeline main` with `{}` and print the result.

HTML/SVG print as raw text, PNG as decoded bytes, anything else as pretty JSON; the exit
status is 1 when the status is ≥ 400 or a hard error occurred.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

from webpipe.errors import WebpipeError
from webpipe.executor.background import end_request
from webpipe.executor.compiled import Body
from webpipe.executor.context import RequestContext
from webpipe.executor.env import Env
from webpipe.executor.pipeline import run_body
from webpipe.executor.process_tasks import PROCESS_TASKS
from webpipe.flags import run_feature_flags


def main_body(env: Env) -> Body | None:
    """The main module's own `pipeline main`, compiled at load."""
    return env.named.get((env.index.main.path, "main"))


def parse_script_args(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """`-- a b --k=v --flag --k2 v2` → positionals and options (strings; bare flag true)."""
    args: list[str] = []
    options: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        word = argv[i]
        if word.startswith("--") and len(word) > 2:
            key, eq, value = word[2:].partition("=")
            if eq:
                options[key] = value
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                options[key] = argv[i + 1]
                i += 1
            else:
                options[key] = True
        else:
            args.append(word)
        i += 1
    return args, options


async def run_script(env: Env, argv: list[str]) -> int:
    main = main_body(env)
    if main is None:
        print("error: no `pipeline main` in this file", file=sys.stderr)
        return 1
    args, options = parse_script_args(argv)
    ctx = RequestContext(request={}, env_name=env.env_name, args=args, options=options,
                         extras={"invocation": "script"})
    try:
        await run_feature_flags(env, {}, ctx)
        outcome = await run_body(main, {}, env, ctx)
        end_request(ctx, env, outcome.status or 200)  # the drain below waits for them
    except WebpipeError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        await PROCESS_TASKS.drain()
        await env.aclose()
    _print_value(outcome.state, outcome.content_type)
    return 1 if (outcome.status or 200) >= 400 else 0


def _print_value(state: Any, content_type: str) -> None:
    if content_type.startswith(("text/html", "image/svg+xml")) and isinstance(state, str):
        sys.stdout.write(state + "\n")
    elif content_type.startswith("image/png") and isinstance(state, str):
        sys.stdout.buffer.write(base64.b64decode(state))
    else:
        sys.stdout.write(json.dumps(state, indent=2, ensure_ascii=False) + "\n")
