"""Forged and replayed requests on /nexus/v3 (the CI size of bench/forgery.py):
every kind of tests/attacks.py, through Django's test client, is refused with
401 and stores nothing; a replayed valid request returns the stored id and
creates nothing new."""

import random
from collections import Counter

import pytest

from channels_app.models import Contact, Delivery, EarlyReceipt, Interaction, Message
from tests.attacks import FORGERIES, KINDS, attacks, poisoned_requests, valid_requests
from tests.factories import ChannelFactory

SECRET = "forgery-channel-secret-0123456789abcdef"
BUSINESS_ID = "0123456789"
PATH = f"/nexus/v3/channels/{BUSINESS_ID}/messages"
ATTACKS = 330  # 30 of each kind
SEED = 7


@pytest.fixture
def sms_channel(tenant):
    return ChannelFactory(
        channel_id=BUSINESS_ID, name="SMS", tenant=tenant, media_type="sms", transport="webhook",
        business_id=BUSINESS_ID, webhook_url="http://127.0.0.1:9/hook", secret=SECRET, inbound_route_by_call="1:sms",
    )


def row_counts() -> dict:
    return {model.__name__: model.objects.count() for model in (Message, Interaction, Contact, EarlyReceipt, Delivery)}


def send(client, request):
    return client.generic("POST", PATH, request.body, content_type="application/json", headers=request.headers)


@pytest.mark.django_db
def test_forged_requests_are_refused_and_replays_create_nothing(client, sms_channel):
    # given: a few authentic customer messages, stored
    rng = random.Random(SEED)
    originals = valid_requests(rng, secret=SECRET, business_id=BUSINESS_ID, count=10)
    stored_ids = {}
    for original in originals:
        response = send(client, original)
        assert response.status_code == 200, response.content
        stored_ids[original.body] = response.json()["data"]["ids"]
    generated = attacks(rng, secret=SECRET, business_id=BUSINESS_ID, originals=originals, count=ATTACKS)
    assert set(Counter(a.kind for a in generated)) == set(KINDS)
    before = row_counts()

    # when: every forgery
    answers = Counter()
    for attack in generated:
        if attack.kind in FORGERIES:
            answers[attack.kind, send(client, attack).status_code] += 1

    # then: all 401, nothing stored
    assert {status for _kind, status in answers} == {401}, answers
    assert row_counts() == before

    # when: the replays
    replays = [attack for attack in generated if attack.kind == "replay"]
    for replay in replays:
        response = send(client, replay)
        # then: the stored message's id again, nothing new
        assert response.status_code == 200, response.content
        assert response.json()["data"]["ids"] == stored_ids[replay.body]
    assert len(replays) == ATTACKS // len(KINDS)
    assert row_counts() == before


POISONED = 200  # correctly signed requests with a lone surrogate or a NUL character somewhere


@pytest.mark.django_db
def test_signed_requests_with_lone_surrogates_or_nul_are_refused_with_520(client, sms_channel):
    """The text rules on /nexus: a lone surrogate or NUL in any string or key of any message type, correctly
    signed, is 400 with status 520 and stores nothing (it was a 500 with the debug page)."""
    # given
    rng = random.Random(SEED)
    poisoned = poisoned_requests(rng, secret=SECRET, business_id=BUSINESS_ID, count=POISONED)
    before = row_counts()

    # when
    answers = Counter()
    for request in poisoned:
        response = send(client, request)
        answers[request.kind, response.status_code, response.json()["status"]["code"]] += 1

    # then
    assert set(answers) == {("surrogate", 400, 520), ("nul", 400, 520)}, answers
    assert sum(answers.values()) == POISONED
    assert row_counts() == before
