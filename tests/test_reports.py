"""The conversation and delivery reports (API.md, "Reports"; issue 27): each figure against a small
hand-counted fixture, the fold's increments, the period rules, tenants, the permission, CSV, and the admin's
Reports page in a browser."""

import csv
import io
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from channels_app.models import (
    Channel,
    ChannelOutage,
    ConversationSummary,
    Delivery,
    DeliveryAttempt,
    Interaction,
    Message,
    Offer,
    ReportRollup,
    Tenant,
)
from channels_app.services import rollups
from channels_app.services.rollups import (
    HISTOGRAM_BOUNDS,
    bucket_bounds,
    bucket_of,
    percentile,
    reports_fold,
)
from tests.conftest import _client_for, member
from tests.factories import ChannelFactory, InteractionFactory, TenantFactory

NOW = timezone.now().replace(microsecond=0)
T0 = (NOW - timedelta(days=2)).replace(minute=10, second=0)


def _interaction(channel, *, client_id, queue="1:session-chat", created_at=T0, ended_after=None, agent=None,
                 disposition=""):
    interaction = InteractionFactory(channel=channel, client_id=client_id, queue=queue, outbound=False)
    ended = {"state": "ended", "ended_at": created_at + ended_after} if ended_after is not None else {}
    Interaction.objects.filter(pk=interaction.pk).update(created_at=created_at, assigned_to=agent,
                                                         disposition=disposition, **ended)
    return interaction


def _message(interaction, *, direction, after, status=None, reasons=(), latencies=()):
    message = Message.objects.create(interaction=interaction, channel=interaction.channel, direction=direction,
                                     text="hello", status=status or ("received" if direction == "inbound" else "sent"),
                                     reasons=list(reasons))
    Message.objects.filter(pk=message.pk).update(created_at=interaction.created_at + after)
    if latencies:
        delivery = Delivery.objects.create(message=message, channel=interaction.channel, state="delivered",
                                           attempts=len(latencies), next_attempt_at=NOW)
        DeliveryAttempt.objects.bulk_create(
            DeliveryAttempt(delivery=delivery, number=n + 1, started_at=NOW, outcome="accepted", status_code=200,
                            latency_ms=latency) for n, latency in enumerate(latencies))
    return message


@pytest.fixture
def world(tenant, channel, django_user_model):
    """Tenant 1 (channel WhatsApp): queue 1:session-chat has I1 (answered after 30 s, accepted by alice at
    +60 s, ended at +600 s: handle 540 s, disposition Sale; a read reply and a failed one) and I2 (never
    answered, ended at +20 min: handle 1200 s, ended without a reply); queue 1:other has I3 (answered after
    10 s, open). An interaction of ten days ago in 1:session-chat, and tenant 2's own conversation."""
    alice = member("alice", "WhatsApp agent", tenants=[tenant])
    one = _interaction(channel, client_id="15550000001", ended_after=timedelta(seconds=600), agent=alice,
                       disposition="Sale")
    _message(one, direction="inbound", after=timedelta(0))
    _message(one, direction="outbound", after=timedelta(seconds=30), status="read", latencies=[100.0])
    _message(one, direction="outbound", after=timedelta(seconds=90), status="failed",
             reasons=[{"code": 310, "message": "Rate limit reached."}], latencies=[200.0])
    _message(one, direction="inbound", after=timedelta(seconds=100))
    Offer.objects.create(interaction=one, agent=alice, state="accepted", expires_at=NOW,
                         answered_at=T0 + timedelta(seconds=60))
    two = _interaction(channel, client_id="15550000002", created_at=T0 + timedelta(minutes=5),
                       ended_after=timedelta(minutes=20))
    _message(two, direction="inbound", after=timedelta(0))
    three = _interaction(channel, client_id="15550000003", queue="1:other")
    _message(three, direction="inbound", after=timedelta(0))
    _message(three, direction="outbound", after=timedelta(seconds=10), status="delivered", latencies=[50.0])
    old = _interaction(channel, client_id="15550000004", created_at=NOW - timedelta(days=10))
    _message(old, direction="inbound", after=timedelta(0))

    away_tenant = TenantFactory(id=2, name="Away")
    away = ChannelFactory(channel_id="channel-away", tenant=away_tenant, endpoints=["2:session-chat"],
                          inbound_route_by_call="2:session-chat")
    theirs = _interaction(away, client_id="15550000005", queue="2:session-chat")
    _message(theirs, direction="inbound", after=timedelta(0))
    _message(theirs, direction="outbound", after=timedelta(seconds=5), status="delivered", latencies=[75.0])
    reports_fold()
    return {"alice": alice, "one": one, "two": two, "three": three, "away": away}


def _reader(tenant, name="lead"):
    return _client_for(member(name, "Administrator", tenants=[tenant]))


def _groups(response):
    assert response.status_code == 200, response.content[:300]
    return {group["key"]: group for group in response.json()["groups"]}


def _near(value, exact):
    """A percentile read from the histograms: within a bucket's half width (2^(1/8), 9%) of the exact one."""
    return value is not None and exact / 1.091 <= value <= exact * 1.091


# --- the histograms -----------------------------------------------------------------------------------------------


def test_each_value_falls_in_its_bucket_and_a_percentile_is_within_9_percent():
    for value in (0.05, 0.1, 1, 2.5, 30, 540, 1200, 86_400):
        low, high = bucket_bounds(bucket_of(value))
        assert low <= value < high
        assert _near(percentile({str(bucket_of(value)): 1}, 0.5), value) or value < 0.1
    histogram = {}
    for value in range(1, 101):
        key = str(bucket_of(value))
        histogram[key] = histogram.get(key, 0) + 1
    assert _near(percentile(histogram, 0.5), 50)
    assert _near(percentile(histogram, 0.9), 90)
    assert percentile({}, 0.5) is None


# --- the conversation report --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_conversations_by_queue_are_counted_as_by_hand(world, tenant):
    groups = _groups(_reader(tenant).get("/api/reports/conversations/?group_by=queue"))

    assert set(groups) == {"1:session-chat", "1:other"}  # not the ten-day-old one, not tenant 2's
    chat, other = groups["1:session-chat"], groups["1:other"]
    assert (chat["interactions"], chat["messages_in"], chat["messages_out"], chat["ended_without_reply"]) == \
        (2, 3, 2, 1)
    assert _near(chat["first_response_seconds"]["p50"], 30) and _near(chat["first_response_seconds"]["p90"], 30)
    assert _near(chat["handle_seconds"]["p50"], 540) and _near(chat["handle_seconds"]["p90"], 1200)
    assert (other["interactions"], other["messages_in"], other["messages_out"], other["ended_without_reply"]) == \
        (1, 1, 1, 0)
    assert _near(other["first_response_seconds"]["p50"], 10)
    assert other["handle_seconds"] == {"p50": None, "p90": None}  # still open


@pytest.mark.django_db
def test_conversations_by_agent_channel_and_disposition(world, tenant, channel):
    client = _reader(tenant)

    agents = _groups(client.get("/api/reports/conversations/?group_by=agent"))
    assert agents[world["alice"].pk]["interactions"] == 1 and agents[world["alice"].pk]["label"] == "alice"
    assert agents[None]["interactions"] == 2  # not assigned
    channels = _groups(client.get("/api/reports/conversations/?group_by=channel"))
    assert list(channels) == [channel.pk]
    assert (channels[channel.pk]["interactions"], channels[channel.pk]["messages_in"],
            channels[channel.pk]["messages_out"]) == (3, 4, 3)
    dispositions = _groups(client.get("/api/reports/conversations/?group_by=disposition"))
    assert (dispositions["Sale"]["interactions"], dispositions[""]["interactions"]) == (1, 2)


@pytest.mark.django_db
def test_a_change_is_folded_once_however_often_the_fold_runs(world, tenant):
    # given I2 gets its reply after all, and alice takes it
    _message(world["two"], direction="outbound", after=timedelta(minutes=2), status="sent")
    Interaction.objects.filter(pk=world["two"].pk).update(assigned_to=world["alice"])

    # when the fold runs twice
    reports_fold()
    rows_before = list(ReportRollup.objects.order_by("pk").values())
    reports_fold()

    # then the reply counts once, and I2 moved from "not assigned" to alice
    assert list(ReportRollup.objects.order_by("pk").values()) == rows_before
    client = _reader(tenant)
    chat = _groups(client.get("/api/reports/conversations/?group_by=queue"))["1:session-chat"]
    assert (chat["messages_out"], chat["ended_without_reply"]) == (3, 0)
    assert _near(chat["first_response_seconds"]["p90"], 120)
    agents = _groups(client.get("/api/reports/conversations/?group_by=agent"))
    assert (agents[world["alice"].pk]["interactions"], agents[None]["interactions"]) == (2, 1)


def _rollup_rows():
    return {(row.pop("tenant_id"), row.pop("dimension"), row.pop("key"), row.pop("hour")): row
            for row in ReportRollup.objects.values(*(f.name for f in ReportRollup._meta.fields if f.name != "id"))}


def _messages_out(client, queue="1:session-chat"):
    return _groups(client.get("/api/reports/conversations/?group_by=queue"))[queue]["messages_out"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="two sessions at once: PostgreSQL's (SQLite's fold "
                    "reads the last FOLD_OVERLAP again each time instead)")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_change_committed_after_a_fold_that_could_not_see_it_is_counted_once(world, tenant, channel, monkeypatch):
    # given another session writes a reply and has not committed when a fold runs (no margin for the moment
    # between a row's time and its transaction's start: the transaction has begun before it)
    monkeypatch.setattr(rollups, "STAMP_MARGIN", timedelta(0))
    written, commit = threading.Event(), threading.Event()

    def agent_reply():
        try:
            with transaction.atomic():
                Channel.objects.filter(pk=channel.pk).exists()
                _message(world["one"], direction="outbound", after=timedelta(seconds=300), status="delivered")
                written.set()
                commit.wait(timeout=30)
        finally:
            connections.close_all()

    other_session = threading.Thread(target=agent_reply)
    other_session.start()
    assert written.wait(timeout=30)
    reports_fold()
    client = _reader(tenant)
    assert _messages_out(client) == 2  # not visible yet

    # when it commits, and the folds run on
    commit.set()
    other_session.join(timeout=30)
    reports_fold()
    reports_fold()

    # then it is counted, once
    assert _messages_out(client) == 3
    ours = _groups(client.get("/api/reports/deliveries/?group_by=channel"))[channel.pk]
    assert (ours["messages"], ours["delivered"]) == (4, 3)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite's fold reads the last FOLD_OVERLAP again")
@pytest.mark.parametrize(("last", "open_since", "seen", "until"), [
    (NOW - timedelta(minutes=5), None, True, NOW),  # nothing open: up to now
    (NOW - timedelta(minutes=5), NOW - timedelta(seconds=2), True, NOW - timedelta(seconds=2)),  # to the oldest start
    (NOW - timedelta(minutes=5), NOW - timedelta(hours=1), True, NOW - rollups.FOLD_OVERLAP),  # no further back
    (NOW - timedelta(minutes=5), None, False, NOW - rollups.FOLD_OVERLAP),  # others hidden: each may be that old
    (NOW - timedelta(seconds=30), NOW - timedelta(days=1), True, NOW - timedelta(seconds=30)),  # never backwards
])
def test_each_fold_reads_from_the_last_ones_end_to_what_is_surely_committed(monkeypatch, last, open_since, seen,
                                                                             until):
    monkeypatch.setattr(rollups, "_oldest_open_transaction", lambda: (seen, open_since))

    assert rollups._window(last, NOW) == (last - rollups.STAMP_MARGIN, until)
    assert rollups._window(None, NOW)[0] is None


@pytest.mark.django_db
def test_a_receipt_after_the_fold_is_counted_once(world, tenant, channel):
    # given I3's reply was folded as delivered; then its read receipt arrives
    reply = Message.objects.get(interaction=world["three"], direction="outbound")
    reply.status = "read"
    reply.save(update_fields=["status", "updated_at"])

    # when the fold runs, twice
    reports_fold()
    rows = _rollup_rows()
    reports_fold()

    # then it moved from delivered to read, and nothing else changed
    assert _rollup_rows() == rows
    client = _reader(tenant)
    ours = _groups(client.get("/api/reports/deliveries/?group_by=channel"))[channel.pk]
    assert (ours["messages"], ours["delivered"], ours["read"]) == (3, 2, 2)
    assert _messages_out(client, queue="1:other") == 1


@pytest.mark.django_db
def test_the_set_based_fold_counts_exactly_as_the_python_one(world, tenant, channel):
    # given the world's odd cases too: failures without words, with a code only, removed, reasons not a list of
    # objects; latencies on a bucket's bound; an answer in the same instant; an end before the offer's answer
    odd = _interaction(channel, client_id="15550000009", queue="1:odd", ended_after=timedelta(seconds=5))
    _message(odd, direction="inbound", after=timedelta(0))
    _message(odd, direction="outbound", after=timedelta(0), status="failed", reasons=[{"code": 470}],
             latencies=[HISTOGRAM_BOUNDS[30], HISTOGRAM_BOUNDS[30] * 0.999999, 0.0])
    _message(odd, direction="outbound", after=timedelta(seconds=1), status="failed", reasons=[{"message": ""}])
    _message(odd, direction="outbound", after=timedelta(seconds=2), status="failed", reasons=["text"])
    _message(odd, direction="outbound", after=timedelta(seconds=3), status="removed", reasons=[{"message": "x"}])
    _message(odd, direction="outbound", after=timedelta(seconds=4), status="failed",
             reasons=[{"message": "é" * 300, "code": 1}])
    Offer.objects.create(interaction=odd, agent=world["alice"], state="accepted", expires_at=NOW,
                         answered_at=T0 + timedelta(seconds=60))
    reports_fold()
    by_sql = (_rollup_rows(), {row["interaction_id"]: row for row in ConversationSummary.objects.values()})

    # when everything is counted again one interaction at a time in Python
    ReportRollup.objects.all().delete()
    ConversationSummary.objects.all().delete()
    rollups._fold_chunk_in_python(list(Interaction.objects.values_list("pk", flat=True)))

    # then the rollups and the summaries are the same, row for row
    by_python = (_rollup_rows(), {row["interaction_id"]: row for row in ConversationSummary.objects.values()})
    assert by_sql == by_python
    assert by_sql[1][odd.pk]["figures"]["failed_by_reason"] == {"470": 1, "General error.": 2, "Removed": 1,
                                                                 "é" * 200: 1}


@pytest.mark.django_db
def test_an_end_with_no_new_message_is_folded_too(world, tenant):
    # given I3, open, ends now (an expiry or Done: no message, only ended_at)
    Interaction.objects.filter(pk=world["three"].pk).update(state="ended", ended_at=timezone.now())

    reports_fold()

    other = _groups(_reader(tenant).get("/api/reports/conversations/?group_by=queue"))["1:other"]
    exact = (timezone.now() - T0).total_seconds()
    assert other["handle_seconds"]["p50"] is not None and _near(other["handle_seconds"]["p50"], exact)


@pytest.mark.django_db
def test_a_purged_conversation_still_counts(world, tenant):
    Interaction.objects.filter(pk=world["two"].pk).delete()
    reports_fold()

    chat = _groups(_reader(tenant).get("/api/reports/conversations/?group_by=queue"))["1:session-chat"]
    assert chat["interactions"] == 2


# --- the delivery report ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_deliveries_by_channel_are_counted_as_by_hand(world, tenant, channel):
    groups = _groups(_reader(tenant).get("/api/reports/deliveries/?group_by=channel"))

    assert list(groups) == [channel.pk]
    ours = groups[channel.pk]
    assert (ours["messages"], ours["delivered"], ours["read"]) == (3, 2, 1)
    assert ours["failed_by_reason"] == {"Rate limit reached.": 1}
    assert _near(ours["latency_ms"]["p50"], 100) and _near(ours["latency_ms"]["p99"], 200)
    assert ours["circuit_open_seconds"] == 0


@pytest.mark.django_db
def test_the_circuit_open_time_is_what_falls_inside_the_period(world, tenant, channel):
    # given the circuit opened at T0 and closed (the database writes each opening)
    Channel.objects.filter(pk=channel.pk).update(down_since=T0)
    assert ChannelOutage.objects.get(channel=channel).ended_at is None
    Channel.objects.filter(pk=channel.pk).update(down_since=None)
    assert ChannelOutage.objects.get(channel=channel).ended_at is not None

    # then a period of an hour either side of T0 saw it open for the hour after T0
    since, until = (T0 - timedelta(hours=1)).isoformat(), (T0 + timedelta(hours=1)).isoformat()
    response = _reader(tenant).get("/api/reports/deliveries/", {"from": since, "to": until})
    assert _groups(response)[channel.pk]["circuit_open_seconds"] == 3600


# --- the rules of every report ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("query", "field"), [
    ({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
    ({"from": "2024-01-01", "to": "2026-01-01"}, "from"),
    ({"from": "yesterday"}, "from"),
    ({"to": "2026-13-01T00:00:00"}, "to"),
    ({"to": "0001-01-02T00:00:00"}, "to"),
    ({"from": "0001-01-01T00:00:00+05:00"}, "from"),
    ({"to": "2026-01-01T00:00:00\x00"}, None),  # a NUL anywhere in a URL: 400 before any view
    ({"group_by": "contact"}, "group_by"),
])
def test_a_bad_period_or_group_is_400_naming_the_field(tenant, query, field):
    response = _reader(tenant).get("/api/reports/conversations/", query)

    assert response.status_code == 400
    assert field is None or field in response.json(), response.json()


@pytest.mark.django_db
def test_the_other_tenant_sees_only_its_own_and_an_agent_sees_nothing(world, tenant):
    away = _reader(Tenant.objects.get(pk=2), name="away-lead")
    assert list(_groups(away.get("/api/reports/conversations/?group_by=queue"))) == ["2:session-chat"]
    assert list(_groups(away.get("/api/reports/deliveries/"))) == [world["away"].pk]

    agent = _client_for(member("plain-agent", "WhatsApp agent", tenants=[tenant]))
    assert agent.get("/api/reports/conversations/").status_code == 403
    assert agent.get("/api/reports/deliveries/").status_code == 403
    senior = _client_for(member("senior", "WhatsApp senior agent", tenants=[tenant]))
    assert senior.get("/api/reports/conversations/").status_code == 200


@pytest.mark.django_db
def test_csv_has_a_row_per_group_and_no_formula(world, tenant):
    Interaction.objects.filter(pk=world["one"].pk).update(disposition="=HYPERLINK(\"http://x\")")
    _message(world["one"], direction="inbound", after=timedelta(seconds=200))  # the change the fold sees
    reports_fold()

    response = _reader(tenant).get("/api/reports/conversations/?group_by=disposition&format=csv")

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    by_key = {row["key"]: row for row in rows}
    assert by_key["'=HYPERLINK(\"http://x\")"]["interactions"] == "1"
    assert by_key[""]["interactions"] == "2"
    assert "first_response_seconds_p50" in rows[0]
    bad = _reader(tenant, name="lead-2").get("/api/reports/deliveries/?format=csv&from=nonsense")
    assert bad.status_code == 400


@pytest.mark.django_db
def test_the_reports_page_links_every_figure_to_its_rows(world, tenant, client):
    # given a lead of tenant 1 signed in to the admin
    lead = member("page-lead", "Administrator", tenants=[tenant], password="page-lead-pass-123")
    client.force_login(lead)

    page = client.get("/admin/reports/?group_by=queue")

    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('<svg class="dms-chart"') == 3 and "seconds (p50, p90)" in html
    assert "queue__exact=1%3Asession-chat" in html and "reply=none" in html
    # the link of "ended without a reply" lists exactly I2
    link = next(row["links"]["ended_without_reply"] for row in page.context["conversations"]["groups"]
                if row["key"] == "1:session-chat")
    listed = client.get(link)
    assert listed.status_code == 200  # not the admin's redirect for a lookup it refuses
    assert list(listed.context["cl"].queryset.values_list("pk", flat=True)) == [world["two"].pk]
    delivered = next(row["links"]["delivered"] for row in page.context["deliveries"]["groups"])
    assert client.get(delivered).context["cl"].result_count == 2
    # and an agent may not open it
    client.force_login(member("page-agent", "WhatsApp agent", tenants=[tenant]))
    assert client.get("/admin/reports/").status_code == 403
