"""Chat sessions over time: expiry (dms/session-shutdown-timeout, lost
TerminateSessionFlag chats), the periodic tasks that run it, delivery
receipts, and customer messages (Third-Party Messaging API, WhatsApp hub
driver attributes)."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from channels_app import tasks
from channels_app.choices import MediaType, Transport
from channels_app.models import Channel, Contact, Interaction, Message
from channels_app.options_catalog import DMS
from channels_app.services.interactions import (
    customer_message_receive,
    hub_driver_attributes,
    sessions_expire,
)
from channels_app.services.invitations import invite_to_chat
from channels_app.services.options import option_set
from channels_app.services.receipts import receipt_apply
from channels_app.services.schedules import PERIODIC_TASKS
from tests.conftest import require_or_skip
from tests.factories import ChannelFactory, InteractionFactory


@pytest.fixture
def simulator_channel(tenant):
    return ChannelFactory(
        channel_id="channel-ghub-simulator",
        name="Simulator",
        tenant=tenant,
        media_type=MediaType.WHATSAPP,
        transport=Transport.SIMULATOR,
        business_id="19251112222",
        endpoints=["1:session-chat"],
        inbound_route_by_call="1:session-chat",
    )


def make_interaction(channel: Channel, client_id: str, *, outbound: bool = False, terminate: bool = False):
    return InteractionFactory(
        channel=channel,
        client_id=client_id,
        queue="1:session-chat",
        outbound=outbound,
        user_data=hub_driver_attributes(channel=channel, client_id=client_id, business_id=channel.business_id),
        terminate_after_send=terminate,
    )


def make_outbound_message(interaction: Interaction, *, status: str = "sent", external_id: str = "ext-1") -> Message:
    return Message.objects.create(
        interaction=interaction,
        channel=interaction.channel,
        direction="outbound",
        text="Your bill is due.",
        payload={"type": "Text", "text": "Your bill is due."},
        status=status,
        external_id=external_id,
    )


def age(interaction: Interaction, *, idle: timedelta | None = None, created: timedelta | None = None) -> None:
    now = timezone.now()
    changes = {}
    if idle is not None:
        changes["last_activity_at"] = now - idle
    if created is not None:
        changes["created_at"] = now - created
    Interaction.objects.filter(pk=interaction.pk).update(**changes)


# --- expiry -------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_sessions_idle_longer_than_the_channels_shutdown_timeout_are_ended(channel, simulator_channel):
    # given: 60 seconds on the webhook channel, the default (1800) on the simulator channel
    option_set(section=DMS, name="session-shutdown-timeout", value="60", channel=channel)
    idle = make_interaction(channel, "15550000001")
    fresh = make_interaction(channel, "15550000002")
    idle_elsewhere = make_interaction(simulator_channel, "15550000003")
    age(idle, idle=timedelta(seconds=61))
    age(fresh, idle=timedelta(seconds=30))
    age(idle_elsewhere, idle=timedelta(seconds=120))

    # when
    ended = sessions_expire()

    # then
    assert ended == 1
    idle.refresh_from_db()
    assert idle.state == "ended"
    assert idle.end_reason == "session-shutdown-timeout"
    assert idle.ended_at is not None
    assert Interaction.objects.get(pk=fresh.pk).state == "queued"
    assert Interaction.objects.get(pk=idle_elsewhere.pk).state == "queued"


@pytest.mark.django_db
def test_the_global_shutdown_timeout_applies_without_an_override(channel):
    # given
    option_set(section=DMS, name="session-shutdown-timeout", value="300")
    interaction = make_interaction(channel, "15550000001")
    age(interaction, idle=timedelta(seconds=301))

    # when
    sessions_expire()

    # then
    assert Interaction.objects.get(pk=interaction.pk).state == "ended"


@pytest.mark.django_db
def test_an_ended_session_keeps_its_end(channel):
    # given
    option_set(section=DMS, name="session-shutdown-timeout", value="60", channel=channel)
    interaction = make_interaction(channel, "15550000001")
    Interaction.objects.filter(pk=interaction.pk).update(
        state="ended", end_reason="agent", ended_at=datetime(2020, 3, 5, tzinfo=UTC)
    )
    age(interaction, idle=timedelta(hours=1))

    # when
    ended = sessions_expire()

    # then
    interaction.refresh_from_db()
    assert ended == 0
    assert (interaction.end_reason, interaction.ended_at) == ("agent", datetime(2020, 3, 5, tzinfo=UTC))


@pytest.mark.django_db
def test_the_sweep_reads_the_open_interactions_alone_by_their_partial_index(channel, simulator_channel):
    require_or_skip(connection.vendor == "postgresql", "query plans are PostgreSQL's")
    # given: 200 ended conversations on each channel; on the webhook channel an idle and a fresh one (its timeout
    # kept in each: the sweep's first query), on the simulator channel one idle by the default (the per-channel
    # query)
    option_set(section=DMS, name="session-shutdown-timeout", value="60", channel=channel)
    past = make_interaction(channel, "15550000009")
    Interaction.objects.bulk_create(
        Interaction(channel=on, contact=past.contact, client_id=past.client_id, type=past.type,
                    subtype=past.subtype, queue=past.queue, state="ended", ended_at=timezone.now())
        for on in (channel, simulator_channel) for _ in range(200))
    Interaction.objects.filter(pk=past.pk).update(state="ended", ended_at=timezone.now())
    idle, fresh = make_interaction(channel, "15550000001"), make_interaction(channel, "15550000002")
    idle_by_default = make_interaction(simulator_channel, "15550000003")
    age(idle, idle=timedelta(seconds=61))
    age(fresh, idle=timedelta(seconds=30))
    age(idle_by_default, idle=timedelta(hours=1))
    Interaction.objects.filter(pk=idle_by_default.pk).update(session_options={})  # made before values were kept
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Interaction._meta.db_table}")

    # when
    with CaptureQueriesContext(connection) as captured:
        ended = sessions_expire()

    # then
    assert ended == 2
    assert [Interaction.objects.get(pk=made.pk).state for made in (idle, fresh, idle_by_default)] == [
        "ended", "queued", "ended"]
    sweeps = [query["sql"] for query in captured.captured_queries if "last_activity_at" in query["sql"]]
    assert len(sweeps) == 1 + Channel.objects.count(), sweeps
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the plan a big table gets, on a small one
        for sweep in sweeps:
            cursor.execute(f"EXPLAIN {sweep}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            # The open interactions only: no index of the ended ones, none of last_activity_at
            assert re.findall(r"(?:Index Scan using|Index Only Scan using|Bitmap Index Scan on) (\w+)", plan) == [
                "interaction_open_by_contact"], plan


@pytest.mark.django_db
def test_terminate_session_flag_chats_whose_message_never_left_are_ended_after_15_minutes(simulator_channel):
    # given: the default shutdown timeout (30 minutes) does not end any of them
    lost = make_interaction(simulator_channel, "15550000001", outbound=True, terminate=True)
    make_outbound_message(lost, status="queued", external_id="")
    recent = make_interaction(simulator_channel, "15550000002", outbound=True, terminate=True)
    make_outbound_message(recent, status="queued", external_id="")
    ordinary = make_interaction(simulator_channel, "15550000003", outbound=True)
    age(lost, created=timedelta(minutes=16))
    age(recent, created=timedelta(minutes=14))
    age(ordinary, created=timedelta(minutes=16))

    # when
    ended = sessions_expire()

    # then
    assert ended == 1
    lost.refresh_from_db()
    assert lost.state == "ended"
    assert "TerminateSessionFlag" in lost.end_reason
    assert Interaction.objects.get(pk=recent.pk).state == "queued"
    assert Interaction.objects.get(pk=ordinary.pk).state == "queued"


@pytest.mark.django_db
def test_the_expire_sessions_task_calls_the_service(channel):
    option_set(section=DMS, name="session-shutdown-timeout", value="60", channel=channel)
    interaction = make_interaction(channel, "15550000001")
    age(interaction, idle=timedelta(minutes=5))

    assert tasks.expire_sessions() == 1
    assert Interaction.objects.get(pk=interaction.pk).state == "ended"


@pytest.mark.django_db
def test_the_periodic_tasks_are_stored_for_django_celery_beat():
    from project.celery import app

    assert PERIODIC_TASKS  # the names live in channels_app/services/schedules.py
    for name, (task, seconds) in PERIODIC_TASKS.items():
        periodic = PeriodicTask.objects.get(name=name)
        assert periodic.task == task
        assert periodic.enabled
        assert periodic.interval.every == seconds
        assert periodic.interval.period == "seconds"
        assert task in app.tasks, f"{task} is scheduled but no such Celery task is registered"
    assert "channels_app.expire_sessions" in {task for task, _ in PERIODIC_TASKS.values()}


# --- receipts -----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "stored"), [("Delivered", "delivered"), ("Removed", "removed")])
def test_a_receipt_sets_the_message_status(channel, status, stored):
    # given
    message = make_outbound_message(make_interaction(channel, "15550000001"))

    # when
    outcome = receipt_apply(channel=channel, external_id="ext-1", status=status)

    # then
    assert outcome.applied is True
    assert outcome.message.pk == message.pk
    message.refresh_from_db()
    assert message.status == stored
    assert message.reasons == []
    if stored == "delivered":
        assert message.delivered_at is not None


@pytest.mark.django_db
def test_a_failed_receipt_keeps_its_reasons_and_known_codes_get_their_message(channel):
    # given
    message = make_outbound_message(make_interaction(channel, "15550000001"))

    # when
    outcome = receipt_apply(
        channel=channel, external_id="ext-1", status="Failed",
        reasons=[{"code": 350}, {"code": 530, "message": "Number not on WhatsApp"}],
    )

    # then
    assert outcome.applied is True
    message.refresh_from_db()
    assert message.status == "failed"
    assert message.reasons == [
        {"code": 350, "message": "Message not allowed."},
        {"code": 530, "message": "Number not on WhatsApp"},
    ]


@pytest.mark.django_db
def test_a_failed_receipt_without_reasons_is_a_general_error(channel):
    message = make_outbound_message(make_interaction(channel, "15550000001"))

    receipt_apply(channel=channel, external_id="ext-1", status="Failed")

    message.refresh_from_db()
    assert message.reasons == [{"code": 500, "message": "General error."}]


@pytest.mark.django_db
def test_a_duplicate_receipt_changes_nothing(channel):
    # given
    message = make_outbound_message(make_interaction(channel, "15550000001"))
    receipt_apply(channel=channel, external_id="ext-1", status="Delivered")
    message.refresh_from_db()
    delivered_at = message.delivered_at

    # when
    outcome = receipt_apply(channel=channel, external_id="ext-1", status="Delivered")

    # then
    assert outcome.applied is False
    message.refresh_from_db()
    assert (message.status, message.delivered_at) == ("delivered", delivered_at)


EXPIRED, GENERAL = "The message has expired.", "General error."


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("first", "late", "final"),
    [
        (("Removed", None), ("Delivered", None), ("removed", [], True)),
        (("Failed", [{"code": 305}]), ("Delivered", None), ("failed", [{"code": 305, "message": EXPIRED}], True)),
        (("Removed", None), ("Failed", [{"code": 500}]), ("removed", [{"code": 500, "message": GENERAL}], False)),
    ],
    ids=["delivered-after-removed", "delivered-after-failed", "failed-after-removed"],
)
def test_an_older_receipt_does_not_undo_a_final_state_but_is_recorded(channel, first, late, final):
    """Any order of the same receipts ends alike: the late one leaves the status
    as it is, but its delivery time or failure reasons are kept, as they would
    have been in the other order."""
    # given
    message = make_outbound_message(make_interaction(channel, "15550000001"))
    receipt_apply(channel=channel, external_id="ext-1", status=first[0], reasons=first[1])

    # when
    outcome = receipt_apply(channel=channel, external_id="ext-1", status=late[0], reasons=late[1])

    # then
    assert outcome.applied is True
    message.refresh_from_db()
    assert (message.status, message.reasons, message.delivered_at is not None) == final


@pytest.mark.django_db
@pytest.mark.parametrize("late", ["Delivered", "Removed", "Failed"])
def test_receipts_in_either_order_end_alike(channel, late):
    first_order = make_outbound_message(make_interaction(channel, "15550000001"))
    other_order = make_outbound_message(make_interaction(channel, "15550000002"), external_id="ext-2")
    receipts = [("Failed", [{"code": 350}]), (late, [{"code": 310, "message": "Slow down"}])]

    for status, reasons in receipts:
        receipt_apply(channel=channel, external_id="ext-1", status=status, reasons=reasons)
    for status, reasons in reversed(receipts):
        receipt_apply(channel=channel, external_id="ext-2", status=status, reasons=reasons)

    first_order.refresh_from_db()
    other_order.refresh_from_db()
    assert (first_order.status, first_order.reasons, first_order.delivered_at is None) == (
        other_order.status, other_order.reasons, other_order.delivered_at is None)


@pytest.mark.django_db
def test_a_failure_after_delivery_is_recorded(channel):
    message = make_outbound_message(make_interaction(channel, "15550000001"))
    receipt_apply(channel=channel, external_id="ext-1", status="Delivered")

    outcome = receipt_apply(channel=channel, external_id="ext-1", status="Failed", reasons=[{"code": 350}])

    assert outcome.applied is True
    message.refresh_from_db()
    assert message.status == "failed"


@pytest.mark.django_db
def test_a_receipt_for_an_unknown_external_id_is_not_applied(channel):
    message = make_outbound_message(make_interaction(channel, "15550000001"))

    outcome = receipt_apply(channel=channel, external_id="ext-unknown", status="Delivered")

    assert (outcome.message, outcome.applied) == (None, False)
    assert Message.objects.get(pk=message.pk).status == "sent"


@pytest.mark.django_db
def test_a_receipt_names_a_message_of_its_own_channel_only(channel, simulator_channel):
    message = make_outbound_message(make_interaction(channel, "15550000001"))

    outcome = receipt_apply(channel=simulator_channel, external_id="ext-1", status="Delivered")

    assert outcome.applied is False
    assert Message.objects.get(pk=message.pk).status == "sent"


# --- customer messages ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_customer_message_opens_an_inbound_interaction_with_the_hub_driver_attributes(channel):
    # given
    sent = datetime(2026, 3, 5, 12, 12, 13, tzinfo=UTC)

    # when
    message, created = customer_message_receive(
        channel=channel, client_id="15556667777", text="Hello, is my bill ready?",
        channel_message_id="wamid.1", nickname="Johnny", origin_time=sent, trace_id="trace-1",
    )

    # then
    assert created is True
    assert (message.direction, message.status, message.text) == ("inbound", "received", "Hello, is my bill ready?")
    assert message.channel_message_id == "wamid.1"
    assert message.trace_id == "trace-1"
    interaction = message.interaction
    assert (interaction.type, interaction.subtype) == ("Inbound", "InboundNew")
    assert interaction.queue == "1:session-chat"  # the channel's inbound-route-by-call
    assert interaction.client_id == "15556667777"
    assert interaction.last_customer_message_at == sent
    assert interaction.user_data == {
        "_umsInboundIxnSubmittedBy": "DigitalMessagingServer",
        "_umsChannel": "channel-whatsapp-REAL",
        "_umsMediaType": "whatsapp",
        "_umsMediaTypeChat": "whatsappsession",
        "_umsMsgType": "text",
        "_umsMsgId": "wamid.1",
        "_umsMsgOriginTime": sent.isoformat(),
        "_umsFromAddr": "15556667777",
        "_umsToAddr": "19251112222",
        "_msg_ProfileNickname": "Johnny",
        "_umsMsgPlainText": "Hello, is my bill ready?",
        "PhoneNumber": "15556667777",
        "Subject": "Hello, is my bill ready?",
        "_umsChatSessionId": interaction.pk,
    }
    contact = interaction.contact
    assert (contact.phone_number, contact.nickname) == ("+15556667777", "Johnny")


@pytest.mark.django_db
def test_the_next_customer_message_continues_the_open_interaction(channel):
    # given
    first, _ = customer_message_receive(channel=channel, client_id="15556667777", text="Hello", channel_message_id="m1")

    # when
    second, created = customer_message_receive(
        channel=channel, client_id="15556667777", text="Anyone there?", channel_message_id="m2"
    )

    # then
    assert created is True
    assert second.interaction_id == first.interaction_id
    assert Interaction.objects.count() == 1
    interaction = Interaction.objects.get()
    assert interaction.user_data["_umsMsgPlainText"] == "Anyone there?"
    assert interaction.user_data["_umsMsgId"] == "m2"
    assert list(interaction.messages.values_list("text", flat=True)) == ["Hello", "Anyone there?"]


@pytest.mark.django_db
def test_a_duplicate_channel_message_id_stores_nothing_new(channel):
    # given
    first, _ = customer_message_receive(channel=channel, client_id="15556667777", text="Hello", channel_message_id="m1")

    # when
    again, created = customer_message_receive(
        channel=channel, client_id="15556667777", text="Hello (resent)", channel_message_id="m1"
    )

    # then
    assert created is False
    assert again.pk == first.pk
    assert Message.objects.count() == 1
    assert Interaction.objects.get().user_data["_umsMsgPlainText"] == "Hello"


@pytest.mark.django_db
def test_the_same_channel_message_id_on_another_channel_is_another_message(channel, simulator_channel):
    customer_message_receive(channel=channel, client_id="15556667777", text="Hello", channel_message_id="m1")

    _, created = customer_message_receive(
        channel=simulator_channel, client_id="15556667777", text="Hello", channel_message_id="m1"
    )

    assert created is True
    assert Message.objects.count() == 2
    assert Interaction.objects.count() == 2
    assert Contact.objects.count() == 1  # one customer, one phone number


@pytest.mark.django_db
def test_a_customer_message_after_the_session_ended_opens_a_new_interaction(channel):
    first, _ = customer_message_receive(channel=channel, client_id="15556667777", text="Hello", channel_message_id="m1")
    Interaction.objects.filter(pk=first.interaction_id).update(state="ended")

    second, _ = customer_message_receive(
        channel=channel, client_id="15556667777", text="Again", channel_message_id="m2"
    )

    assert second.interaction_id != first.interaction_id
    assert Interaction.objects.get(pk=second.interaction_id).state == "queued"


@pytest.mark.django_db
def test_a_reply_to_an_invitation_continues_the_outbound_interaction_and_activates_it(channel):
    # given
    invitation = invite_to_chat(
        channel=channel, client_id="15556667777", user_data={"PhoneNumber": "15556667777",
                                                             "GCTI_Chat_SubmitAsOutbound": "true"},
    )

    # when
    message, _ = customer_message_receive(channel=channel, client_id="15556667777", text="Yes, call me")

    # then
    assert message.interaction_id == invitation.interaction.pk
    interaction = Interaction.objects.get(pk=invitation.interaction.pk)
    assert (interaction.type, interaction.state) == ("Outbound", "active")
    assert interaction.user_data["_umsMsgPlainText"] == "Yes, call me"
    assert interaction.user_data["GCTI_Chat_SubmitAsOutbound"] == "true"


@pytest.mark.django_db
def test_a_reply_continues_the_invitation_whatever_way_the_number_was_written(channel):
    # given: the strategy wrote the number with a '+', the hub writes it without
    invitation = invite_to_chat(channel=channel, client_id="+15556667777", user_data={"PhoneNumber": "+15556667777"})

    # when
    message, _ = customer_message_receive(channel=channel, client_id="15556667777", text="Yes, call me")

    # then
    assert Contact.objects.count() == 1
    assert message.interaction_id == invitation.interaction.pk


@pytest.mark.django_db
def test_the_24_hour_window_counts_from_the_latest_customer_message(channel):
    # given
    later = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
    earlier = later - timedelta(hours=2)
    customer_message_receive(channel=channel, client_id="15556667777", text="1", channel_message_id="m1",
                             origin_time=later)

    # when: a message sent earlier arrives late
    customer_message_receive(channel=channel, client_id="15556667777", text="0", channel_message_id="m0",
                             origin_time=earlier)

    # then
    assert Interaction.objects.get().last_customer_message_at == later


@pytest.mark.django_db
def test_a_customer_message_keeps_the_idle_session_alive(channel):
    # given
    option_set(section=DMS, name="session-shutdown-timeout", value="60", channel=channel)
    first, _ = customer_message_receive(channel=channel, client_id="15556667777", text="Hello", channel_message_id="m1")
    age(first.interaction, idle=timedelta(seconds=59))

    # when
    customer_message_receive(channel=channel, client_id="15556667777", text="Still there", channel_message_id="m2")
    sessions_expire(now=timezone.now() + timedelta(seconds=30))

    # then
    assert Interaction.objects.get().state != "ended"


@pytest.mark.django_db
def test_a_customer_message_dated_in_the_future_opens_the_window_from_its_arrival_only(channel):
    # given: the customer's clock is a day ahead (channel.time beyond the arrival time)
    before = timezone.now()
    ahead = before + timedelta(days=1)

    # when
    message, _ = customer_message_receive(channel=channel, client_id="15556667777", text="Hi",
                                          channel_message_id="m1", origin_time=ahead)

    # then: the 24-hour window counts from the arrival, the message keeps the time it claims
    after = timezone.now()
    interaction = Interaction.objects.get()
    assert before <= interaction.last_customer_message_at <= after
    assert message.origin_time == ahead
    assert interaction.user_data["_umsMsgOriginTime"] == ahead.isoformat()


@pytest.mark.django_db
def test_the_subject_hub_attribute_is_the_first_line_of_the_first_customer_message(channel):
    # given
    customer_message_receive(channel=channel, client_id="15556667777", text="My bill\r\nis wrong: 129.99",
                             channel_message_id="m1")

    # when: later messages keep it
    customer_message_receive(channel=channel, client_id="15556667777", text="Hello?", channel_message_id="m2")

    # then
    assert Interaction.objects.get().user_data["Subject"] == "My bill"


@pytest.mark.django_db
def test_the_subject_of_a_message_with_only_files_waits_for_a_text(channel):
    customer_message_receive(channel=channel, client_id="15556667777", text="", channel_message_id="m1")
    assert "Subject" not in Interaction.objects.get().user_data

    customer_message_receive(channel=channel, client_id="15556667777", text="  the photo  ", channel_message_id="m2")
    assert Interaction.objects.get().user_data["Subject"] == "the photo"


@pytest.mark.django_db
def test_the_subject_is_cut_to_the_user_data_length(channel):
    customer_message_receive(channel=channel, client_id="15556667777", text="x" * 1000, channel_message_id="m1")
    assert Interaction.objects.get().user_data["Subject"] == "x" * 256


@pytest.mark.django_db
def test_submitted_by_is_the_applications_name(channel, settings):
    # given
    settings.APPLICATION_NAME = "DMS-Paris"

    # when
    message, _ = customer_message_receive(channel=channel, client_id="15556667777", text="Hi", channel_message_id="m1")

    # then
    assert message.interaction.user_data["_umsInboundIxnSubmittedBy"] == "DMS-Paris"
    assert hub_driver_attributes(channel=channel, client_id="1", business_id="2")["_umsInboundIxnSubmittedBy"] == \
        "DMS-Paris"


def test_the_application_name_defaults_to_the_servers_name():
    from django.conf import settings as django_settings

    assert django_settings.APPLICATION_NAME == "DigitalMessagingServer"
