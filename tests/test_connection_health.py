"""The health check of a kept PostgreSQL connection (project/postgresql): a quiet connection is taken without a
`SELECT 1`, and one the server ended is closed and made again before the request's first query, as Django's
check (CONN_HEALTH_CHECKS) did."""

import select
import time
from unittest import mock

import psycopg
import pytest
from django.db import connection, connections


@pytest.fixture
def own_connection():
    """A connection of its own (not the test's, which holds the test's transaction), connected."""
    if connection.vendor != "postgresql":
        pytest.skip("the PostgreSQL backend's health check")
    wrapper = connections.create_connection("default")
    wrapper.ensure_connection()
    yield wrapper
    wrapper.close()


def _backend_pid(wrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _new_request(wrapper) -> None:
    """What Django does for each request (`close_old_connections`): the next query checks the connection again."""
    wrapper.close_if_unusable_or_obsolete()


@pytest.mark.django_db
def test_a_quiet_connection_is_taken_without_a_query(own_connection):
    # given: a connection used by a request, then idle
    pid = _backend_pid(own_connection)
    _new_request(own_connection)
    assert own_connection.health_check_enabled and not own_connection.health_check_done

    # when: the next request's first query checks it, no statement may be sent for the check
    with mock.patch.object(psycopg.Connection, "cursor", side_effect=AssertionError("a SELECT 1 was sent")):
        own_connection.close_if_health_check_failed()

    # then: taken as it is, once per request
    assert own_connection.health_check_done
    assert _backend_pid(own_connection) == pid


@pytest.mark.django_db
def test_a_connection_the_server_ended_is_made_again(own_connection):
    # given: a kept connection whose backend the server ends between two requests
    pid = _backend_pid(own_connection)
    _new_request(own_connection)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 10
    while not select.select([own_connection.connection.fileno()], [], [], 0.05)[0]:
        assert time.monotonic() < deadline, "the server never said goodbye"

    # when: the next request's first query
    new_pid = _backend_pid(own_connection)

    # then: a new connection answered it, no error reached the request
    assert new_pid != pid


@pytest.mark.django_db
def test_a_connection_left_in_a_transaction_gets_django_s_check(own_connection):
    # given: a connection that is not idle (a transaction open on it)
    own_connection.connection.execute("BEGIN")
    own_connection.health_check_done = False
    checked = []

    # when
    with mock.patch.object(type(own_connection), "is_usable", lambda wrapper: checked.append(wrapper) or True):
        own_connection.close_if_health_check_failed()

    # then: Django's check (SELECT 1) decided, not the socket
    assert checked == [own_connection]
    own_connection.connection.execute("ROLLBACK")
