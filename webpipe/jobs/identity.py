"""Which steps are durable jobs, how a job names its step, and `webpipe check`'s rules.

A `@background` step is durable when it carries `@durable` or the app says
`config jobs { durable: true }`. A job names its step by file, line and a hash of the
step's source text (plus which occurrence of that text in the file it is), so a worker
running a newer version of the app finds the step even when lines moved, and refuses,
with a reason, a job whose step text no longer exists (spec/jobs.md §3).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from webpipe.config import config_bool, config_int
from webpipe.db import resolve_target
from webpipe.errors import Diagnostic
from webpipe.executor.plan import walk_tags

if TYPE_CHECKING:
    from webpipe.executor.env import Env
    from webpipe.executor.plan import StepPlan

CONFIG_KEYS = {"durable", "heartbeatTimeoutMs", "concurrency", "pollMs", "syncCommit"}
_INDEX = "jobs.index"


@dataclass(frozen=True, slots=True)
class JobSettings:
    """`config jobs { … }` (spec/jobs.md has the table)."""

    durable: bool = False  # every @background step of the app is durable
    heartbeat_timeout_ms: int = 60_000  # a running job silent this long runs elsewhere
    concurrency: int = 10  # jobs one consumer runs at once
    poll_ms: int = 2_000  # longest wait between queue polls (NOTIFY wakes it sooner)
    # false: the enqueue commits without waiting for the WAL flush (safe from webpipe
    # crashes, not from a Postgres crash in the next ~0.6 s); spec/jobs.md §2
    sync_commit: bool = True

    @classmethod
    def of(cls, block: Mapping[str, Any] | None) -> JobSettings:
        d = cls()
        return cls(config_bool(block, "durable", d.durable),
                   max(1_000, config_int(block, "heartbeatTimeoutMs", d.heartbeat_timeout_ms)),
                   max(1, config_int(block, "concurrency", d.concurrency)),
                   max(50, config_int(block, "pollMs", d.poll_ms)),
                   config_bool(block, "syncCommit", d.sync_commit))


def settings(env: Env) -> JobSettings:
    return JobSettings.of(env.config_block("jobs"))


def is_durable(plan: StepPlan, env: Env) -> bool:
    return plan.tags.background and (plan.tags.durable or settings(env).durable)


def step_identity(plan: StepPlan, nth: int, base_dir: Path) -> dict[str, Any]:
    """`{file, line, hash}`: what a job stores to find its step again. The file is relative
    to the app's directory, so a worker started as `webpipe worker ./app.wp` or with an
    absolute path, or on another machine, finds the same step."""
    span = plan.step.span
    text = span.source.text[span.start:span.end]
    file = _relative(span.source.name, base_dir)
    digest = hashlib.sha256(f"{file}\n{nth}\n{text}".encode()).hexdigest()[:20]
    return {"file": file, "line": span.line, "hash": digest}


def step_label(ident: Mapping[str, Any]) -> str:
    """`app.wp:12`, the step's label in job listings and metrics."""
    return f"{ident['file']}:{ident['line']}"


def _relative(name: str, base_dir: Path) -> str:
    try:
        return Path(name).resolve().relative_to(base_dir.resolve()).as_posix()
    except ValueError:  # a module outside the app's directory
        return name


def durable_index(env: Env) -> dict[str, tuple[StepPlan, dict[str, Any]]]:
    """Every durable step of the program by its hash (computed once per program)."""
    found = env.resources.get(_INDEX)
    if found is None:
        found = {}
        seen: dict[tuple[str, str], int] = {}
        plans = sorted((p for p in env.step_plans if is_durable(p, env)),
                       key=lambda p: (p.step.span.source.name, p.step.span.start))
        for plan in plans:
            span = plan.step.span
            key = (span.source.name, span.source.text[span.start:span.end])
            seen[key] = nth = seen.get(key, 0) + 1
            ident = step_identity(plan, nth, env.base_dir)
            found[ident["hash"]] = (plan, ident)
        env.resources[_INDEX] = found
    return dict(found)


def identity_of(plan: StepPlan, env: Env) -> dict[str, Any]:
    for candidate, ident in durable_index(env).values():
        if candidate is plan:
            return ident
    raise LookupError(f"{plan.location}: not a durable step")


def check_durable(env: Env) -> list[Diagnostic]:
    """`@durable` needs a database: a configured one, or the embedded one left on."""
    if resolve_target(env.config_block("pg"), env.base_dir) is not None:
        return []
    out = []
    for plan in env.step_plans:
        for tag in walk_tags(plan.step.tags):
            if tag.name == "durable" and not tag.negated:
                out.append(Diagnostic("@durable needs a database: configure `config pg` or "
                                      "DATABASE_URL, or leave the embedded one on "
                                      "(WP_PG_EMBEDDED is off)", tag.span, code="bad-tag"))
    if settings(env).durable and not out:
        for plan in env.step_plans:
            if plan.tags.background:
                out.append(Diagnostic("config jobs { durable: true } makes this @background "
                                      "step a job, which needs a database (none configured "
                                      "and WP_PG_EMBEDDED is off)", plan.step.span,
                                      code="bad-tag"))
    return out
