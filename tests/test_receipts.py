"""Delivery receipts on /nexus/v3 (the CI size of bench/receipts.py): the same
receipts in order, or shuffled with duplicates, leave every message in the
same final state; receipts for ids no message has are ignored (2xx) or
refused (4xx), never a 5xx."""

import hashlib
import hmac
import itertools
import random
import threading

import pytest
from django.db import connections
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels_app.models import Interaction, Message, MessageStatus
from tests.factories import ChannelFactory, InteractionFactory
from tests.receipt_plans import (
    REASON_CODES,
    STATUSES,
    Receipt,
    batches,
    disordered,
    external_id,
    in_order,
    request_body,
    stories,
)
from tests.workers import require_shared_database

SECRET = "receipts-channel-secret"
# The fixtures are built once per test, not per example: each example makes its own messages.
HYPOTHESIS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_examples = itertools.count()


def post(client, channel_id: str, receipts: list[Receipt]):
    body = request_body(receipts)
    signature = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    return client.generic("POST", f"/nexus/v3/channels/{channel_id}/messages", body,
                          content_type="application/json", headers={"X-Hub-Signature": signature})


@pytest.fixture
def interactions(tenant) -> dict[str, Interaction]:
    """A webhook channel "in-order" and one "disordered", each with an interaction to hold messages."""
    made = {}
    for name in ("in-order", "disordered"):
        channel = ChannelFactory(
            channel_id=name, name=name, tenant=tenant, media_type="sms", transport="webhook",
            business_id="0123456789", webhook_url="http://127.0.0.1:9/hook", secret=SECRET,
        )
        made[name] = InteractionFactory(channel=channel, client_id="15556667777", queue="1:session-chat",
                                        outbound=True, user_data={})
    return made


def sent_messages(interaction: Interaction, external_ids: list[str]) -> None:
    """Outgoing messages that their webhook answers named `external_ids`, as after delivery."""
    Message.objects.bulk_create(
        Message(interaction=interaction, channel_id=interaction.channel_id, direction="outbound", text="Hello",
                status=MessageStatus.SENT, external_id=external) for external in external_ids
    )


def final_states(channel_id: str, external_ids: list[str]) -> dict[str, tuple]:
    """What the API shows of each message after its receipts: status, reasons, delivered or not."""
    rows = Message.objects.filter(channel__channel_id=channel_id, external_id__in=external_ids)
    return {row.external_id: (row.status, row.reasons, row.delivered_at is not None) for row in rows}


def apply(client, channel_id: str, requests: list[list[Receipt]]) -> None:
    for receipts in requests:
        response = post(client, channel_id, receipts)
        assert response.status_code == 200, response.content


def renamed(receipts: list[Receipt], prefix: str) -> list[Receipt]:
    return [Receipt(f"{prefix}{r.external_id}", r.status, r.reasons) for r in receipts]


receipt = st.builds(
    lambda number, status, codes: Receipt(
        external_id(number), status, tuple((code, "") for code in codes) if status == "Failed" else ()
    ),
    st.integers(0, 4),
    st.sampled_from(STATUSES),
    st.lists(st.sampled_from(REASON_CODES), max_size=2, unique=True),
)


@pytest.mark.django_db
@HYPOTHESIS
@given(data=st.data(), ordered=st.lists(receipt, min_size=1, max_size=30))
def test_shuffled_and_duplicated_receipts_end_as_in_order(client, interactions, data, ordered):
    # given: a fresh set of sent messages on each channel, named alike
    prefix = f"h{next(_examples)}-"
    ordered = renamed(ordered, prefix)
    external_ids = sorted({r.external_id for r in ordered})
    for interaction in interactions.values():
        sent_messages(interaction, external_ids)
    duplicates = data.draw(st.lists(st.sampled_from(ordered), max_size=max(1, len(ordered) // 2)))
    shuffled = data.draw(st.permutations(ordered + duplicates))
    rng = random.Random(data.draw(st.integers(0, 2**32)))

    # when
    apply(client, "in-order", batches(rng, ordered, largest=5))
    apply(client, "disordered", batches(rng, shuffled, largest=5))

    # then
    assert final_states("disordered", external_ids) == final_states("in-order", external_ids)


@pytest.mark.django_db
def test_the_suite_at_ci_size(client, interactions):
    """bench/receipts.py's plan, small: 200 receipts over 50 messages, 20% duplicated."""
    rng = random.Random(3)
    ordered = in_order(stories(rng, messages=50, receipts=200))
    shuffled = disordered(rng, ordered, duplicated=0.2)
    external_ids = [external_id(number) for number in range(50)]
    for interaction in interactions.values():
        sent_messages(interaction, external_ids)

    apply(client, "in-order", batches(rng, ordered, largest=10))
    apply(client, "disordered", batches(rng, shuffled, largest=10))

    in_order_states = final_states("in-order", external_ids)
    assert len(in_order_states) == 50
    assert final_states("disordered", external_ids) == in_order_states


@pytest.mark.django_db
@HYPOTHESIS
@given(unknown=st.one_of(st.text(min_size=1, max_size=30), st.text(min_size=195, max_size=260)),
       status=st.sampled_from(STATUSES),
       codes=st.lists(st.integers(-(2**40), 2**40), max_size=3))
def test_receipts_for_unknown_ids_are_ignored_or_refused_never_a_server_error(client, interactions, unknown, status,
                                                                             codes):
    # given: one message the batch also names
    known = f"known-{next(_examples)}"
    sent_messages(interactions["in-order"], [known])
    receipts = [Receipt(unknown, status, tuple((code, "") for code in codes)), Receipt(known, "Delivered")]

    # when
    response = post(client, "in-order", receipts)

    # then: ignored (its id is "") with the rest applied, or all of it refused
    assert response.status_code < 500, response.content
    known_status = Message.objects.get(external_id=known).status
    if response.status_code == 200:
        ids = response.json()["data"]["ids"]
        assert ids[0] == "" or Message.objects.filter(pk=ids[0], external_id=unknown).exists()
        assert known_status == MessageStatus.DELIVERED
    else:
        assert 400 <= response.status_code < 500
        assert known_status == MessageStatus.SENT


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # keeps the rows migrations wrote
def test_concurrent_requests_naming_the_same_messages_in_other_orders_are_all_applied(interactions):
    """Two third-party connections sending receipts for the same messages, each
    request in its own order: each request waits for the other, none fails."""
    require_shared_database()  # SQLite locks the whole table: the row locks under test are PostgreSQL's
    external_ids = [external_id(number) for number in range(6)]
    sent_messages(interactions["disordered"], external_ids)
    statuses = []

    def connection(seed: int) -> None:
        rng, client = random.Random(seed), Client(raise_request_exception=False)
        try:
            for _ in range(15):
                receipts = [Receipt(external, rng.choice(STATUSES)) for external in rng.sample(external_ids, 6)]
                statuses.append(post(client, "disordered", receipts).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=connection, args=(seed,)) for seed in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 30
