"""What a finished pipeline answers: the status of an unhandled error and the body's keys.

A route whose final state still carries an `errors` array that no `result` branch handled
answers with the status of its error type (`ERROR_STATUS`, spec/server.md §1), not 200 as in
the reference; `config server { unhandledErrorStatus: 200 }` restores the reference's answer.
The state rules carry request keys along (the §6.3 copy-back, Merge, `.data` wrapping) so
later steps can read them; those copies are the route's plumbing, not its answer, so a
carried key that still holds the request's own value is left out of the response
(spec/server.md §6). The server and the test runner both shape their answer here.
"""

from __future__ import annotations

from typing import Any

from webpipe.config import config_int
from webpipe.executor.env import Env
from webpipe.executor.state import Outcome, error_type, without_restored

# spec/server.md §1: one table, the error type of `errors[0].type` -> the HTTP status
ERROR_STATUS: dict[str, int] = {
    "validationError": 400,
    "badRequest": 400,
    "authError": 401,
    "unauthorized": 401,
    "forbidden": 403,
    "notFound": 404,
    "conflict": 409,
    "rateLimit": 429,
    "rateLimitError": 429,
    "networkError": 502,
    "httpError": 502,
    "responseTooLarge": 502,
    "capacityError": 503,
    "timeout": 504,
    "timeoutError": 504,
}
DEFAULT_ERROR_STATUS = 500


def unhandled_status(env: Env) -> int | None:
    """`config server { unhandledErrorStatus }`: None (the table) unless the app set one."""
    configured = config_int(env.configs.get("server"), "unhandledErrorStatus", 0)
    return configured if 100 <= configured <= 599 else None


def error_status(kind: str, fixed: int | None = None) -> int:
    """The status of an unhandled error of type `kind` (or the app's fixed status)."""
    return fixed if fixed is not None else ERROR_STATUS.get(kind, DEFAULT_ERROR_STATUS)


def final_status(out: Outcome, fixed: int | None = None) -> int | None:
    """The response status: the route's own when it set one (a `result` branch), else the
    error table's when the final state is an unhandled error envelope, else None (200)."""
    if out.status is not None:
        return out.status
    kind = error_type(out.state)
    return None if kind is None else error_status(kind, fixed)


def answer(out: Outcome, request: Any, fixed: int | None) -> tuple[Any, int | None]:
    """The state to send and its status (see module docstring); `fixed` is the app's
    `unhandled_status`, read once at load."""
    return without_restored(out.state, out.restored, request), final_status(out, fixed)
