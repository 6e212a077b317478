"""Check the rest of a file that has syntax errors (for `check` and the language server).

Syntax recovery (`syntax.recover`) keeps a program of the items that parse; it is loaded,
planned and checked as usual, so one broken route does not hide the problems of the others.
What the broken items would have declared is unknown, so a complaint about an unknown name
that appears in a dropped item's text (a call of a pipeline whose declaration is broken) is
left out rather than reported as a second, false error.
"""

from __future__ import annotations

import re
from pathlib import Path

from webpipe.errors import Diagnostic, WebpipeError, WpSyntaxError
from webpipe.executor.env import build_env
from webpipe.loader import ProgramIndex, load_source
from webpipe.source import Source
from webpipe.syntax.recover import Recovery, recover

# codes of a name nothing declares
_NAME_CODES = {"unknown-name", "unknown-variable", "unknown-partial", "unknown-route",
               "unknown-task", "unknown-pipeline", "unknown-test-target"}
_QUOTED = re.compile(r"'([^'\s]+)'")
_ROUTE = re.compile(r"[A-Za-z]+[ \t]+/")


def recovered_index(source: Source, path: Path, recovery: Recovery,
                    problems: list[Diagnostic] | None = None) -> ProgramIndex | None:
    """The program index of what recovery kept (None if nothing, or an import fails: its
    error goes to `problems`, every syntax error of the imported file when it is one)."""
    if recovery.program is None:
        return None
    try:
        return load_source(source, path, program=recovery.program)
    except WpSyntaxError as exc:
        if problems is not None and exc.span is not None:
            problems += [e.diagnostic() for e in recover(exc.span.source).errors] or \
                [exc.diagnostic()]
    except WebpipeError as exc:
        if problems is not None:
            problems.append(exc.diagnostic())
    return None


def check_recovered(index: ProgramIndex, recovery: Recovery) -> list[Diagnostic]:
    """The diagnostics of the kept items, less those a dropped item may explain."""
    from webpipe.check import check_env
    from webpipe.server import build_served

    try:
        env = build_env(index)
        build_served(env)
    except WebpipeError as exc:
        return [exc.diagnostic()]
    text = index.main.source.text
    dropped = [text[start:end] for start, end in recovery.dropped]
    return [d for d in check_env(env) if not _explained(d, dropped)]


def _explained(diagnostic: Diagnostic, dropped: list[str]) -> bool:
    if diagnostic.code not in _NAME_CODES:
        return False
    if diagnostic.code == "unknown-route":  # the route the test calls may be the broken one
        return any(_ROUTE.match(chunk) for chunk in dropped)
    names = _QUOTED.findall(diagnostic.message)[:1]
    return any(re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", chunk)
               for name in names for chunk in dropped)
