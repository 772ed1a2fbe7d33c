"""The hot paths' statements run as server-side prepared statements (issue 25).

Django's psycopg cursors bind parameters on the client: each call sends the whole statement with its values
written in, and PostgreSQL parses, analyses and plans it anew. `execute_prepared` sends it once per connection
(psycopg names it and keeps it, `prepare=True`) and then only its values, so that PostgreSQL reuses the parsed
statement and, once its plan does not depend on the values, the plan. It runs on Django's connection, inside
whatever transaction is open there (atomic blocks and on_commit hold), through Django's cursor wrapper (the
statement is logged, counted by CaptureQueriesContext and seen by `connection.execute_wrapper`, its errors are
Django's), and with Django's adapters, so that rows come back as Django's client-side cursor gives them.

What a caller must know:

* The values are sent typed (psycopg's types: str as unknown, int as int2/int4/int8 by size, datetime as
  timestamptz, `Jsonb` as jsonb, lists as arrays): a placeholder whose type PostgreSQL cannot infer needs a cast
  (`%(x)s::bigint`). A value whose type changes (an int past 32767) makes psycopg prepare the statement again,
  once per type.
* psycopg keeps `prepared_max` (100) statements per connection and deallocates the least recently used beyond:
  a statement whose text varies (a row count written into it) would churn through them; pass arrays instead.
* Constants compared to an indexed column are better written into the text than passed: a plan made without
  the values (PostgreSQL's generic plan, after five executions) cannot know that `state = $1` is rare.
* `PREPARED_STATEMENTS=false` (a pooler in transaction mode) runs the same statements through Django's ordinary
  cursor, as SQLite always does.
"""

import psycopg
from django.conf import settings
from django.db import NotSupportedError, connection
from django.db.backends.utils import CursorDebugWrapper
from psycopg.pq import Format

# SQLSTATE feature_not_supported, raised by a prepared statement whose result columns a migration changed.
_PLAN_OUTDATED = "0A000"


class _PreparedCursor(psycopg.Cursor):
    """A server-side binding cursor that prepares every statement it executes (and reuses it the next time)."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


class _LoggedAsWritten(CursorDebugWrapper):
    """Django's debug wrapper logs the text psycopg last sent, which psycopg does not keep for a prepared
    statement (None): the statement is logged as the caller wrote it, Django's placeholders in it."""

    def execute(self, sql, params=None):
        with self.debug_sql(sql, params):
            return super(CursorDebugWrapper, self).execute(sql, params)


def execute_prepared(sql: str, params) -> list[tuple]:
    """Run `sql` with `params` (Django's placeholders: %s or %(name)s) on the default connection, prepared on
    PostgreSQL, and return its rows ([] for a statement that returns none)."""
    if connection.vendor != "postgresql" or not settings.PREPARED_STATEMENTS:
        with connection.cursor() as cursor:
            return _run(cursor, sql, params)
    try:
        with _prepared_cursor() as cursor:
            return _run_prepared(cursor, sql, params)
    except NotSupportedError as error:
        if not (_plan_outdated(error) and connection.get_autocommit()):
            # In a transaction the statement cannot be run again: the transaction is rolled back, and psycopg
            # forgets every prepared statement of its connection on a rollback, so the next call prepares anew.
            raise
    # Outside a transaction nothing was done, and nothing would roll back: a new connection has no statement
    # prepared before the migration.
    connection.close()
    with _prepared_cursor() as cursor:
        return _run_prepared(cursor, sql, params)


def _run(cursor, sql: str, params) -> list[tuple]:
    cursor.execute(sql, params)
    return cursor.fetchall() if cursor.description is not None else []


def _run_prepared(cursor, sql: str, params) -> list[tuple]:
    """`_run` on a psycopg cursor: whether the statement returned rows read from its result's status (`rownumber`
    is None without rows), not from `description`, which builds a Column object per column (34 for a customer
    message's statement, ~7% of the /nexus request's profile)."""
    cursor.execute(sql, params)
    return cursor.fetchall() if cursor.rownumber is not None else []


def _prepared_cursor():
    """What `connection.cursor()` does (health check, connection, thread check, the cursor's time zone, Django's
    wrapper), with a `_PreparedCursor` in place of Django's client-side one."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django opens its connections with psycopg's preparation off, which ignores `prepare=True` too. Turned on
        # here, it touches no other statement: Django's cursors bind on the client and never prepare.
        raw.prepare_threshold = 0
    cursor = _PreparedCursor(raw)
    _time_zone_as_django_sets_it(cursor)
    return _LoggedAsWritten(cursor, connection) if connection.queries_logged else connection.make_cursor(cursor)


def _time_zone_as_django_sets_it(cursor) -> None:
    """DatabaseWrapper.create_cursor's rule: times with a time zone are read in the connection's time zone, set on
    the cursor when it differs from the one the connection was opened with (a TIME_ZONE changed since)."""
    from django.db.backends.postgresql.base import TIMESTAMPTZ_OID
    from django.db.backends.postgresql.psycopg_any import register_tzloader

    if cursor.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT).timezone != connection.timezone:
        register_tzloader(connection.timezone, cursor)


def _plan_outdated(error: NotSupportedError) -> bool:
    cause = error.__cause__
    return getattr(cause, "sqlstate", None) == _PLAN_OUTDATED and "cached plan" in str(cause)
