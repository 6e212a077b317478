"""SQL checked against the real database before the first request (issue 24).

`check_sql(env)` prepares every statement of a program (named and inline `pg` statements,
literal `executeSql` SQL in Lua and JavaScript) on the app's PostgreSQL, or on a scratch
database built from its migrations, and reports PostgreSQL's errors at the SQL's own line
and column, plus parameter count and type checks. `webpipe check --db`, `webpipe serve` and
the language server use it; spec/sqlcheck.md describes what is checked and what is not.
"""

from __future__ import annotations

from webpipe.sqlcheck.check import SqlReport, check_sql, check_sql_blocking, unavailable
from webpipe.sqlcheck.database import DatabaseUnavailable

__all__ = ["DatabaseUnavailable", "SqlReport", "check_sql", "check_sql_blocking",
           "unavailable"]
