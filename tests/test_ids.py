"""Interaction and message ids that grow with time (channels_app/ids.py): the same length and alphabet as
before, random after their time prefix, sorted by time in the database as in Python; and a customer's open
interaction found through the partial index of open interactions, not through their past conversations."""

import re
import time

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_app.choices import MediaType, Transport
from channels_app.ids import ALPHABET, TIME_CHARACTERS, random_characters, time_ordered_id, time_prefix
from channels_app.models import Interaction, InteractionState, Message
from channels_app.models.conversations import generate_interaction_id, generate_message_id
from channels_app.services.interactions import customer_message_receive
from tests.conftest import require_or_skip
from tests.factories import ChannelFactory, InteractionFactory

DEADLINE = 5.0
CLIENT = "15556667777"


def _milliseconds() -> int:
    return time.time_ns() // 1_000_000


def _next_millisecond(after: int) -> int:
    """Polls the clock until its millisecond is past `after` (no sleep: a deadline)."""
    deadline = time.monotonic() + DEADLINE
    while (now := _milliseconds()) <= after:
        assert time.monotonic() < deadline, "the clock did not move"
    return now


def test_the_alphabet_is_in_the_order_of_its_bytes():
    assert list(ALPHABET) == sorted(ALPHABET) and len(ALPHABET) == 62


@pytest.mark.parametrize(("make", "length"), [(generate_interaction_id, 16), (generate_message_id, 20)])
def test_ids_keep_their_length_and_alphabet(make, length):
    ids = [make() for _ in range(1000)]
    assert all(len(value) == length and set(value) <= set(ALPHABET) for value in ids)


def test_the_time_prefix_sorts_as_the_time_across_every_carry():
    # given: times on both sides of each character's carry, the epoch and the last millisecond the prefix holds
    times = sorted({0, 1, 61, 62, 63, 3843, 3844, 62**3, 62**6 - 1, 62**6, 62**7 - 1, _milliseconds()})
    # then
    prefixes = [time_prefix(at) for at in times]
    assert all(len(prefix) == TIME_CHARACTERS for prefix in prefixes)
    assert prefixes == sorted(prefixes) and len(set(prefixes)) == len(prefixes)


def test_ids_made_later_sort_after_earlier_ones():
    # given: one id in each of 20 successive milliseconds
    made, at = [], _milliseconds()
    for _ in range(20):
        at = _next_millisecond(at)
        made.append(time_ordered_id(20))
    # then
    assert made == sorted(made)


def test_ids_of_one_millisecond_are_unique_by_their_random_part():
    ids = [time_ordered_id(16) for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    # every character of the alphabet at every random position: nothing fixed or skipped there
    for position in range(TIME_CHARACTERS, 16):
        assert {value[position] for value in ids} == set(ALPHABET), position


def test_random_characters_are_uniform():
    counts = dict.fromkeys(ALPHABET, 0)
    for _ in range(3100):
        for character in random_characters(20):
            counts[character] += 1
    # 1,000 expected of each (standard deviation 31): a character twice or half as likely as the others, which
    # would take from the bits an id's randomness is counted in, lies far outside
    assert all(830 < n < 1170 for n in counts.values()), counts


@pytest.fixture
def channel(tenant):
    return ChannelFactory(channel_id="sms-ids", tenant=tenant, media_type=MediaType.SMS,
                          transport=Transport.SIMULATOR, business_id="0123456789",
                          inbound_route_by_call="1:session-chat")


@pytest.mark.django_db
def test_the_database_sorts_stored_ids_as_python_does(channel):
    # given: interactions made a millisecond apart, and ids of every character at the first random position
    interactions, at = [], _milliseconds()
    for n in range(5):
        at = _next_millisecond(at)
        interactions.append(InteractionFactory(channel=channel, client_id=f"1555000{n}"))
    prefix = time_prefix(at)
    for character in ALPHABET:
        Message.objects.create(id=f"{prefix}{character}{'0' * 12}", interaction=interactions[0], channel=channel,
                               direction="inbound", status="received")
    # then: the database's collation (PostgreSQL's C.UTF-8, SQLite's BINARY) is the bytes' order
    stored = list(Message.objects.order_by("pk").values_list("pk", flat=True))
    assert stored == sorted(stored) == [f"{prefix}{character}{'0' * 12}" for character in ALPHABET]
    by_id = list(Interaction.objects.filter(channel=channel).order_by("pk").values_list("pk", flat=True))
    assert by_id == [interaction.pk for interaction in interactions]


@pytest.mark.django_db
def test_a_customer_message_finds_the_open_interaction_through_the_open_ones_not_the_past(channel, settings):
    require_or_skip(connection.vendor == "postgresql", "query plans are PostgreSQL's")
    settings.PREPARED_STATEMENTS = False  # the statement logged with its values (a prepared one: its placeholders)
    # given: a customer with 30 ended conversations on the channel and an open one
    for n in range(30):
        customer_message_receive(channel=channel, client_id=CLIENT, text="Hi", channel_message_id=f"past-{n}")
        Interaction.objects.filter(state__in=[InteractionState.QUEUED, InteractionState.ACTIVE]).update(
            state=InteractionState.ENDED, ended_at=timezone.now())
    opened, _ = customer_message_receive(channel=channel, client_id=CLIENT, text="Hello", channel_message_id="m1")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE channels_app_interaction")
    # when
    with CaptureQueriesContext(connection) as captured:
        message, created = customer_message_receive(channel=channel, client_id=CLIENT, text="Still there?",
                                                    channel_message_id="m2", look_for_duplicate=False)
    lookup = next(query["sql"] for query in captured.captured_queries if "open_interaction AS" in query["sql"])
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the plan a big table gets, on a small one
        cursor.execute(f"EXPLAIN {lookup}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    # then
    assert created and message.interaction_id == opened.interaction_id
    # An index scan or a bitmap scan of it, as the planner likes: either way through the open interactions only
    assert re.search(r"(Index Scan using|Bitmap Index Scan on) interaction_open_by_contact\b", plan), plan
    assert "interaction_contact_id" not in plan, plan


@pytest.mark.django_db
def test_a_customer_message_reads_its_own_open_conversation_not_the_channels_others_without_statistics(
        channel, settings):
    require_or_skip(connection.vendor == "postgresql", "query plans are PostgreSQL's")
    settings.PREPARED_STATEMENTS = False  # the statement logged with its values (a prepared one: its placeholders)
    # given: 20 other customers' open conversations on the channel, and tables never analyzed (a new database, or
    # autovacuum not yet come by)
    for n in range(20):
        customer_message_receive(channel=channel, client_id=f"1555000{n:04d}", text="Hi", channel_message_id=f"o{n}")
    opened, _ = customer_message_receive(channel=channel, client_id=CLIENT, text="Hello", channel_message_id="m1")
    # when
    with CaptureQueriesContext(connection) as captured:
        message, created = customer_message_receive(channel=channel, client_id=CLIENT, text="Still there?",
                                                    channel_message_id="m2", look_for_duplicate=False)
    lookup = next(query["sql"] for query in captured.captured_queries if "open_interaction AS" in query["sql"])
    with transaction.atomic(), connection.cursor() as cursor:  # run again (ANALYZE) in place of m2, undone
        Message.objects.filter(pk=message.pk).delete()
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {lookup}")
        (plan,) = cursor.fetchone()
        transaction.set_rollback(True)
    # then
    assert message.interaction_id == opened.interaction_id

    def nodes(node):
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    scans = [node for node in nodes(plan[0]["Plan"]) if node.get("Relation Name") == "channels_app_interaction"
             and node["Node Type"] in ("Index Scan", "Bitmap Heap Scan", "Seq Scan")]
    # Found by its contact: one row read, whatever the number of the channel's open conversations.
    assert scans and all(node["Actual Rows"] <= 1 for node in scans), scans
    assert all(node.get("Index Name") != "interaction_open_by_client" for node in nodes(plan[0]["Plan"])), plan
