"""jq programs, compiled once and shared by every user of jq in a process.

`compile_jq(text)` returns a cached `JqProgram`. A program that mentions `$context` is
compiled as `.context as $context | .state | PROGRAM` and fed `{"state": S, "context": C}`,
so the context is injected per run without recompiling. Errors are raised as `JqError` with
the reference's message prefixes.

Every program is compiled by libjq (which owns compile errors) and, when it stays within the
fast-path subset, also to Python closures (`webpipe.jqfast`, spec/jq.md). Runs on a
request's path are bounded (spec/sandbox.md): `first_inline` runs the closures on the event
loop under a small budget (`INLINE_BUDGET_S`, `INLINE_MAX_UNITS`, counted by
`jqfast.budget`) and raises `NeedsWorker` when the run must go elsewhere (no fast path, a
`Fallback`, or past the inline budget); `run_in_worker` then runs it on libjq in a sandbox
worker under the app's `jqTimeoutMs`/`jqMemoryMb`, raising `JqLimitError` past them.
`first` runs in-process without a budget (tooling and tests only). `WEBPIPE_JQ_LIBJQ=1` in
the environment (read when a program is compiled) forces libjq for every run.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jq

from webpipe.jqfast import Fallback, FastProgram, JqFastError, budget, compile_fast

if TYPE_CHECKING:
    from webpipe.sandbox.pool import SandboxError, SandboxPool

JSON = Any
FORCE_LIBJQ_ENV = "WEBPIPE_JQ_LIBJQ"
_USES_CONTEXT = re.compile(r"\$context\b")
_CONTEXT_PRELUDE = ".context as $context | .state |\n"
_NO_VARIABLES: dict[str, Any] = {}
_FELL_BACK: Any = object()  # `_fast_first`'s answer when libjq must run the program
INLINE_BUDGET_S = 0.002  # fast-path work on the event loop before a run goes to a worker
INLINE_MAX_UNITS = 1_000_000  # elements (or 16-character pieces) built or touched inline


class JqError(Exception):
    """A jq parse, compile or execution error (message already prefixed)."""


class JqLimitError(JqError):
    """A run stopped past its time (`error_type` "timeout") or memory ("limitError") bound."""

    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class NeedsWorker(Exception):
    """Signal from `first_inline`: this run must go to a sandbox worker (`run_in_worker`)."""

    def __init__(self, program: JqProgram, value: JSON, context: JSON = None) -> None:
        super().__init__(program.text)
        self.program, self.value, self.context = program, value, context


class JqProgram:
    """A compiled jq program; thread-safe to run (libjq state is per call)."""

    __slots__ = ("_fast", "_program", "_source", "text", "uses_context")

    def __init__(self, text: str, *, allow_context: bool = True,
                 force_libjq: bool | None = None) -> None:
        self.text = text
        self.uses_context = allow_context and bool(_USES_CONTEXT.search(text))
        source = self._source = _CONTEXT_PRELUDE + text if self.uses_context else text
        try:
            self._program = jq.compile(source)
        except ValueError as exc:
            raise JqError(f"JQ compilation error: {_clean(str(exc))}") from None
        if force_libjq is None:
            force_libjq = libjq_forced()
        self._fast: FastProgram | None = None if force_libjq else compile_fast(text)

    @property
    def input_keys(self) -> frozenset[str] | None:
        """The top-level input keys the program can read (None: maybe all of the input;
        always None for `$context` programs, which see the whole request through it)."""
        if self._fast is None or self.uses_context:
            return None
        return self._fast.input_keys

    @property
    def fast(self) -> bool:
        """Whether runs go through the fast path (libjq only on a `Fallback`)."""
        return self._fast is not None

    def first_inline(self, value: JSON, context: JSON = None) -> JSON:
        """The first output (None if none) from the fast path under the inline budget;
        `NeedsWorker` when the run must go to a sandbox worker instead."""
        fast = self._fast
        if fast is None:
            raise NeedsWorker(self, value, context)
        budget.begin(INLINE_BUDGET_S, INLINE_MAX_UNITS)
        try:
            return fast.first(value, {"context": context} if self.uses_context else _NO_VARIABLES)
        except JqFastError as exc:
            raise JqError(f"JQ execution error: {_clean(exc.message)}") from None
        except Fallback:
            raise NeedsWorker(self, value, context) from None

    async def run_in_worker(self, value: JSON, context: JSON, sandbox: SandboxPool,
                            timeout_ms: int, memory_mb: int) -> JSON:
        """The first output, from libjq in a sandbox worker under the given bounds."""
        from webpipe.sandbox.pool import SandboxError

        data = {"state": value, "context": context} if self.uses_context else value
        try:
            return await sandbox.run("jq", {"program": self._source, "input": data},
                                     timeout_s=timeout_ms / 1000, memory_mb=memory_mb)
        except SandboxError as exc:
            raise _sandbox_error(exc, timeout_ms, memory_mb) from None

    def first_tooling(self, value: JSON, timeout_ms: int = 1000, memory_mb: int = 256) -> JSON:
        """The first output for tooling (`webpipe test` assertions), bounded like a request's
        run: the fast path under the inline budget, else libjq in the blocking tooling worker.
        It blocks its caller, so it never runs in a server."""
        from webpipe.sandbox.blocking import tooling_worker
        from webpipe.sandbox.pool import SandboxError

        budget.begin(INLINE_BUDGET_S, INLINE_MAX_UNITS)
        out = self._fast_first(value, None)
        if out is not _FELL_BACK:
            return out
        data = {"state": value, "context": None} if self.uses_context else value
        try:
            return tooling_worker().run("jq", {"program": self._source, "input": data},
                                        timeout_s=timeout_ms / 1000, memory_mb=memory_mb)
        except SandboxError as exc:
            raise _sandbox_error(exc, timeout_ms, memory_mb) from None

    def first(self, value: JSON, context: JSON = None) -> JSON:
        """The first output of the program on `value`, or None if it yields nothing: in
        this process and without a budget (the library's own tests; requests use the
        bounded `first_inline` / `run_in_worker`, tooling `first_tooling`)."""
        budget.begin()
        out = self._fast_first(value, context)
        if out is not _FELL_BACK:
            return out
        data = {"state": value, "context": context} if self.uses_context else value
        try:
            out = self._program.input_value(data)
            for result in out:
                return result
            return None
        except ValueError as exc:
            raise JqError(f"JQ execution error: {_clean(str(exc))}") from None

    def _fast_first(self, value: JSON, context: JSON) -> JSON:
        """The fast path's first output under the budget already begun, or `_FELL_BACK`
        when the program must run on libjq (no fast form, or a `Fallback`). The request
        path (`first_inline`) inlines this: it is W0's hottest call."""
        if self._fast is None:
            return _FELL_BACK
        try:
            return self._fast.first(value,
                                    {"context": context} if self.uses_context else _NO_VARIABLES)
        except JqFastError as exc:
            raise JqError(f"JQ execution error: {_clean(exc.message)}") from None
        except Fallback:
            return _FELL_BACK

    def all(self, value: JSON) -> list[JSON]:
        budget.begin()
        if self._fast is not None and not self.uses_context:
            try:
                return list(self._fast.outputs(value, _NO_VARIABLES))
            except JqFastError as exc:
                raise JqError(f"JQ execution error: {_clean(exc.message)}") from None
            except Fallback:
                pass
        try:
            return list(self._program.input_value(value))
        except ValueError as exc:
            raise JqError(f"JQ execution error: {_clean(str(exc))}") from None


def _sandbox_error(exc: SandboxError, timeout_ms: int, memory_mb: int) -> JqError:
    """The `JqError` for a failed sandbox run: a bound (`JqLimitError`) or libjq's error."""
    from webpipe.sandbox.pool import SandboxLimit, SandboxMemory, SandboxTimeout

    if isinstance(exc, SandboxTimeout):
        return JqLimitError(f"jq program exceeded its {timeout_ms} ms time budget", "timeout")
    if isinstance(exc, SandboxMemory):
        return JqLimitError(f"jq program exceeded its {memory_mb} MB memory budget",
                            "limitError")
    if isinstance(exc, SandboxLimit):
        return JqLimitError(f"jq program: {exc.message}", "limitError")
    return JqError(f"JQ execution error: {_clean(exc.message)}")


def _clean(message: str) -> str:
    text = message.strip()
    return re.sub(r"^jq: error(?: \(at <unknown>\))?: ", "", text)


def libjq_forced() -> bool:
    """Whether `WEBPIPE_JQ_LIBJQ=1` asks for libjq on every run (for comparisons)."""
    return os.environ.get(FORCE_LIBJQ_ENV) == "1"


def compile_jq(text: str, allow_context: bool = True) -> JqProgram:
    """Compile (or fetch from the cache) a jq program. Raises `JqError`."""
    return _compile_cached(text, allow_context, libjq_forced())


@lru_cache(maxsize=4096)
def _compile_cached(text: str, allow_context: bool, force_libjq: bool) -> JqProgram:
    return JqProgram(text, allow_context=allow_context, force_libjq=force_libjq)


def truthy(value: JSON) -> bool:
    """jq truthiness: everything but `false` and `null` is true."""
    return value is not None and value is not False
