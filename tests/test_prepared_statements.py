"""The hot paths' statements prepared once per connection (channels_app/prepared.py): the values they take and the
rows they give back are those of Django's client-side cursor; they run in the caller's transaction; they are
logged and counted like any statement; and they survive what a long-lived connection meets: a rollback, a failed
transaction, a migration that changes what they return, a connection lost and opened again."""

from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone

import psycopg
import pytest
from django.conf import settings
from django.db import DatabaseError, NotSupportedError, connection, transaction
from django.db.models import JSONField
from django.test.utils import CaptureQueriesContext

from channels_app.models import Tenant
from channels_app.prepared import execute_prepared
from tests.conftest import require_or_skip

committed = pytest.mark.django_db(transaction=True, serialized_rollback=True)
PROBE = "prepared_statements_probe"

ROUND_TRIP = """SELECT %(when)s::timestamptz, %(data)s::jsonb, %(nothing)s::text, %(numbers)s::bigint[],
    %(names)s::text[], %(text)s, %(count)s::integer, %(flag)s::boolean, %(ratio)s::double precision,
    %(missing)s::integer[]"""


def postgresql_only():
    require_or_skip(connection.vendor == "postgresql", "prepared statements are PostgreSQL's")


def prepared_statements(sql_start: str) -> list[str]:
    """This connection's prepared statements whose text starts with `sql_start` (PostgreSQL's own list)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s", [sql_start + "%"])
        return [statement for (statement,) in cursor.fetchall()]


def round_trip_params() -> dict:
    return {"when": datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=dt_timezone(timedelta(hours=2))),
            "data": JSONField().get_db_prep_save({"a": [1, "é", None], "b": {"c": True}}, connection),
            "nothing": None, "numbers": [1, 40000, 2**40], "names": ["x", "y'z", ""], "text": "O'Hara %s",
            "count": 7, "flag": True, "ratio": 1.5, "missing": [None, 3]}


@pytest.mark.django_db
def test_values_come_back_as_the_client_side_cursor_gives_them():
    postgresql_only()
    # when
    (prepared,) = execute_prepared(ROUND_TRIP, round_trip_params())
    with connection.cursor() as cursor:
        cursor.execute(ROUND_TRIP, round_trip_params())
        (client_side,) = cursor.fetchall()
    # then: the same values, times in the connection's zone, jsonb as its text (Django decodes it)
    assert prepared == client_side
    assert prepared[0] == datetime(2026, 12, 6, 23, 2, 3, 456789, tzinfo=UTC)
    assert prepared[0].tzinfo == client_side[0].tzinfo
    assert prepared[1:] == ('{"a": [1, "é", null], "b": {"c": true}}', None, [1, 40000, 2**40], ["x", "y'z", ""],
                            "O'Hara %s", 7, True, 1.5, [None, 3])
    assert prepared_statements("SELECT $1::timestamptz") != []


@pytest.mark.django_db
def test_a_statement_is_prepared_once_and_run_again_with_other_values():
    postgresql_only()
    # when
    first = execute_prepared("SELECT %s::integer + 1", [1])
    second = execute_prepared("SELECT %s::integer + 1", [41])
    # then
    assert (first, second) == ([(2,)], [(42,)])
    assert prepared_statements("SELECT $1::integer + 1") == ["SELECT $1::integer + 1"]


@pytest.mark.django_db
def test_a_statement_without_rows_answers_none():
    # given
    tenant = Tenant.objects.create(id=7, name="Before")
    # when
    rows = execute_prepared("UPDATE channels_app_tenant SET name = %s WHERE id = %s", ["After", tenant.pk])
    # then
    assert rows == []
    tenant.refresh_from_db()
    assert tenant.name == "After"


@pytest.mark.django_db
def test_the_statement_is_logged_and_seen_by_the_execute_wrappers():
    postgresql_only()
    seen = []

    def wrapper(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    # when
    with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(wrapper):
        execute_prepared("SELECT %s::integer", [5])
    # then
    assert seen == ["SELECT %s::integer"]
    assert [query["sql"] for query in captured.captured_queries] == ["SELECT %s::integer"]


@pytest.mark.django_db
def test_it_writes_in_the_caller_s_transaction_and_a_rollback_undoes_it():
    postgresql_only()
    tenant = Tenant.objects.create(id=7, name="Before")
    rename = "UPDATE channels_app_tenant SET name = %s WHERE id = %s RETURNING name"

    # when: a write, then an error in the same atomic block
    with pytest.raises(RuntimeError), transaction.atomic():
        assert execute_prepared(rename, ["Rolled back", tenant.pk]) == [("Rolled back",)]
        assert Tenant.objects.get(pk=tenant.pk).name == "Rolled back"  # seen inside
        raise RuntimeError("the caller fails")
    # then: nothing kept, and the statement runs again (prepared anew if the rollback dropped it)
    assert Tenant.objects.get(pk=tenant.pk).name == "Before"
    assert execute_prepared(rename, ["Kept", tenant.pk]) == [("Kept",)]
    assert Tenant.objects.get(pk=tenant.pk).name == "Kept"


@pytest.mark.django_db
def test_in_a_failed_transaction_it_raises_and_the_next_transaction_runs_it():
    postgresql_only()
    # given: a transaction whose statement failed
    with pytest.raises(DatabaseError), transaction.atomic():
        with pytest.raises(DatabaseError):
            execute_prepared("SELECT 1 / %s::integer", [0])
        # when: another prepared statement in it
        execute_prepared("SELECT %s::integer * 2", [21])
    # then: after the rollback both run
    assert execute_prepared("SELECT %s::integer * 2", [21]) == [(42,)]
    assert execute_prepared("SELECT 1 / %s::integer", [1]) == [(1,)]


@pytest.mark.django_db
def test_with_the_setting_off_nothing_is_prepared(settings):
    postgresql_only()
    # given
    settings.PREPARED_STATEMENTS = False
    # when
    rows = execute_prepared(ROUND_TRIP, round_trip_params())
    # then: the same answer through Django's client-side cursor
    with connection.cursor() as cursor:
        cursor.execute(ROUND_TRIP, round_trip_params())
        assert rows == cursor.fetchall()
    assert prepared_statements("SELECT $1::timestamptz") == []


def other_connection():
    database = settings.DATABASES["default"]
    return psycopg.connect(host=database["HOST"], port=database["PORT"] or 5432, user=database["USER"],
                           password=database["PASSWORD"], dbname=database["NAME"], autocommit=True)


def end_this_connection_on_the_server():
    """The server ends this connection's backend and, before answering, waits until it has gone (the timeout
    argument): without the wait, the next health check's SELECT 1 can reach the backend before it has read its
    SIGTERM, pass, and leave the statement after it to meet the termination."""
    with other_connection() as other:
        (ended,) = other.execute("SELECT pg_terminate_backend(%s, 10000)",
                                 [connection.connection.info.backend_pid]).fetchone()
    assert ended


@pytest.fixture
def probe_table():
    """A table of its own, changed by another connection as a migration of another process would."""
    with other_connection() as other:
        other.execute(f"DROP TABLE IF EXISTS {PROBE}")
        other.execute(f"CREATE TABLE {PROBE} (value integer)")
        other.execute(f"INSERT INTO {PROBE} VALUES (7)")
    yield
    connection.close()  # its prepared statements with it
    with other_connection() as other:
        other.execute(f"DROP TABLE IF EXISTS {PROBE}")


def migrate_probe_to_text():
    with other_connection() as other:
        other.execute(f"ALTER TABLE {PROBE} ALTER COLUMN value TYPE text")


@committed
def test_outside_a_transaction_a_statement_whose_result_a_migration_changed_runs_again(probe_table):
    postgresql_only()
    # given: prepared while the column was an integer
    sql = f"SELECT value FROM {PROBE} WHERE %s::boolean"
    assert execute_prepared(sql, [True]) == [(7,)]
    # when: another process's migration makes it text (PostgreSQL: "cached plan must not change result type")
    migrate_probe_to_text()
    # then: run on a new connection, and then as usual
    assert execute_prepared(sql, [True]) == [("7",)]
    assert execute_prepared(sql, [True]) == [("7",)]


@committed
def test_in_a_transaction_the_changed_result_fails_once_and_the_next_transaction_runs_it(probe_table):
    postgresql_only()
    sql = f"SELECT value FROM {PROBE} WHERE %s::boolean"
    assert execute_prepared(sql, [True]) == [(7,)]
    migrate_probe_to_text()
    # when: in a transaction nothing can run again after the error
    with pytest.raises(NotSupportedError, match="cached plan must not change result type"), transaction.atomic():
        execute_prepared(sql, [True])
    # then: the rollback made psycopg forget its prepared statements
    with transaction.atomic():
        assert execute_prepared(sql, [True]) == [("7",)]


@committed
def test_a_connection_lost_between_requests_is_opened_again_and_the_statement_prepared_there():
    postgresql_only()
    # given: a statement prepared on a connection that the server then ends
    assert execute_prepared("SELECT %s::integer", [1]) == [(1,)]
    end_this_connection_on_the_server()
    # when: the next request starts (Django's request_started: the health check is due again)
    connection.close_if_unusable_or_obsolete()
    # then: CONN_HEALTH_CHECKS finds it dead and connects again, where the statement is prepared anew
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"]
    assert execute_prepared("SELECT %s::integer", [2]) == [(2,)]
    assert prepared_statements("SELECT $1::integer") == ["SELECT $1::integer"]


@committed
def test_a_connection_lost_mid_request_fails_that_statement_and_the_next_request_reconnects():
    postgresql_only()
    assert execute_prepared("SELECT %s::integer", [1]) == [(1,)]
    end_this_connection_on_the_server()
    with pytest.raises(DatabaseError):
        execute_prepared("SELECT %s::integer", [2])
    connection.close_if_unusable_or_obsolete()  # the request's end: the connection errored and is not usable
    assert execute_prepared("SELECT %s::integer", [3]) == [(3,)]

