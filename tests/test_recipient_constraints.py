"""What the database itself guarantees about campaign recipients (migrations 0031 to 0033): a recipient's
campaign and message exist, checked once a statement instead of by a per-row foreign key, and stay while the
recipient points at them, also against a delete running side by side; a message belongs to one recipient at
most."""

import threading
import time

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction

from channels_app.models import Campaign, CampaignCounter, CampaignRecipient, Message
from channels_app.services.lifecycle import messages_delete
from tests.factories import CampaignFactory, InteractionFactory

WAIT = 10  # seconds: the deadline of a wait that must end as soon as the other transaction does


def recipient(campaign_id: int, number: int = 1, **fields) -> CampaignRecipient:
    return CampaignRecipient(campaign_id=campaign_id, row_number=number, client_id=f"1555000{number:04d}", **fields)


def constraint_of(error: IntegrityError) -> str:
    return error.__cause__.diag.constraint_name


@pytest.mark.django_db
def test_a_recipient_of_no_campaign_is_refused_and_so_is_a_move_to_none():
    campaign = CampaignFactory()
    missing = Campaign.objects.order_by("-pk").values_list("pk", flat=True).first() + 1000
    kept = CampaignRecipient.objects.create(campaign=campaign, row_number=1, client_id="15550000001")

    with pytest.raises(IntegrityError) as inserted, transaction.atomic():
        CampaignRecipient.objects.bulk_create([recipient(campaign.pk, 2), recipient(missing, 3)])
    with pytest.raises(IntegrityError) as moved, transaction.atomic():
        CampaignRecipient.objects.filter(pk=kept.pk).update(campaign_id=missing)

    assert constraint_of(inserted.value) == constraint_of(moved.value) == "recipient_campaign_exists"
    assert list(campaign.recipients.values_list("client_id", flat=True)) == ["15550000001"]
    assert sum(CampaignCounter.objects.filter(campaign=campaign).values_list("total", flat=True)) == 1


@pytest.mark.django_db
def test_a_campaign_with_recipients_is_deleted_only_with_them():
    campaign = CampaignFactory()
    CampaignRecipient.objects.bulk_create([recipient(campaign.pk, 1), recipient(campaign.pk, 2)])

    # a delete that leaves its recipients behind: refused when the constraints are checked
    with pytest.raises(IntegrityError) as behind, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM channels_app_campaigncounter WHERE campaign_id = %s", [campaign.pk])
        cursor.execute("DELETE FROM channels_app_campaign WHERE id = %s", [campaign.pk])
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    assert constraint_of(behind.value) == "recipient_campaign_exists"

    # Django's delete takes them along (on_delete=CASCADE)
    campaign.delete()
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    assert not CampaignRecipient.objects.exists()


@pytest.mark.django_db
def test_a_message_belongs_to_one_recipient_and_recipients_without_one_are_many():
    campaign = CampaignFactory()
    interaction = InteractionFactory(channel=campaign.channel)
    message = Message.objects.create(interaction=interaction, channel=campaign.channel, direction="outbound",
                                     status="queued", text="Hi")
    first, second, third = CampaignRecipient.objects.bulk_create([recipient(campaign.pk, n) for n in (1, 2, 3)])
    CampaignRecipient.objects.filter(pk=first.pk).update(message=message)

    with pytest.raises(IntegrityError) as twice, transaction.atomic():
        CampaignRecipient.objects.filter(pk=second.pk).update(message=message)

    assert constraint_of(twice.value) == "recipient_unique_message"
    assert CampaignRecipient.objects.filter(message__isnull=True).count() == 2


@pytest.mark.django_db
def test_a_recipients_message_exists_and_stays_while_the_recipient_points_at_it():
    campaign = CampaignFactory()
    interaction = InteractionFactory(channel=campaign.channel)
    message = Message.objects.create(interaction=interaction, channel=campaign.channel, direction="outbound",
                                     status="queued", text="Hi")
    first, second = CampaignRecipient.objects.bulk_create([recipient(campaign.pk, 1), recipient(campaign.pk, 2)])
    CampaignRecipient.objects.filter(pk=first.pk).update(message=message)

    with pytest.raises(IntegrityError) as given, transaction.atomic():
        CampaignRecipient.objects.filter(pk=second.pk).update(message_id="no-such-message")
    with pytest.raises(IntegrityError) as inserted, transaction.atomic():
        CampaignRecipient.objects.bulk_create([recipient(campaign.pk, 3, message_id="no-such-message")])
    with pytest.raises(IntegrityError) as deleted, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM channels_app_message WHERE id = %s", [message.pk])
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    assert {constraint_of(error.value) for error in (given, inserted, deleted)} == {"recipient_message_exists"}
    # the way the server removes messages empties the recipient first (services/lifecycle.messages_delete)
    messages_delete([message.pk])
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    assert not Message.objects.exists()
    assert CampaignRecipient.objects.filter(message__isnull=True).count() == 2


# --- side by side: the check takes the campaign's row as the foreign key did -------------------------------------


def _dsn() -> str:
    settings = connection.settings_dict
    return psycopg.conninfo.make_conninfo(dbname=settings["NAME"], user=settings["USER"],
                                          password=settings["PASSWORD"] or None, host=settings["HOST"] or None,
                                          port=settings["PORT"] or None)


def _waiting(observer: psycopg.Connection, pid: int) -> bool:
    return observer.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                            [pid]).fetchone()[0]


def _until_waiting(observer: psycopg.Connection, pid: int) -> None:
    deadline = time.monotonic() + WAIT
    while not _waiting(observer, pid):
        assert time.monotonic() < deadline, "the second transaction never waited for the first"


def _in_thread(work) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run():
        try:
            work()
        except psycopg.Error as error:
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


INSERT = ("INSERT INTO channels_app_campaignrecipient (campaign_id, row_number, client_id, contact_fields, "
          "custom_properties, error) VALUES (%s, 1, '15550000001', '{}', '{}', '')")
# The campaign first: its row is what the two transactions meet on (the counters' foreign key is checked at commit).
DELETE = ["DELETE FROM channels_app_campaign WHERE id = %s",
          "DELETE FROM channels_app_campaigncounter WHERE campaign_id = %s"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("first", ["recipients", "delete"])
def test_a_campaign_deleted_while_its_recipients_are_written_is_refused_one_way_or_the_other(first):
    campaign = CampaignFactory()
    with psycopg.connect(_dsn()) as writer, psycopg.connect(_dsn()) as deleter, \
            psycopg.connect(_dsn(), autocommit=True) as observer:
        def write():
            writer.execute(INSERT, [campaign.pk])
            writer.commit()

        def delete():
            for statement in DELETE:
                deleter.execute(statement, [campaign.pk])
            deleter.commit()

        if first == "recipients":
            # given recipients written, not yet committed: the campaign's delete waits for them...
            writer.execute(INSERT, [campaign.pk])
            thread, outcome = _in_thread(delete)
            _until_waiting(observer, deleter.info.backend_pid)
            writer.commit()
            thread.join(WAIT)
            # ...and, once they are there, is refused
            assert isinstance(outcome.get("error"), psycopg.errors.ForeignKeyViolation)
            assert outcome["error"].diag.constraint_name == "recipient_campaign_exists"
            assert Campaign.objects.filter(pk=campaign.pk).exists()
            assert CampaignRecipient.objects.filter(campaign=campaign).count() == 1
        else:
            # given the campaign deleted, not yet committed: the recipients wait for it...
            for statement in DELETE:
                deleter.execute(statement, [campaign.pk])
            thread, outcome = _in_thread(write)
            _until_waiting(observer, writer.info.backend_pid)
            deleter.commit()
            thread.join(WAIT)
            # ...and, once it is gone, are refused
            assert isinstance(outcome.get("error"), psycopg.errors.ForeignKeyViolation)
            assert outcome["error"].diag.constraint_name == "recipient_campaign_exists"
            assert not Campaign.objects.filter(pk=campaign.pk).exists()
            assert not CampaignRecipient.objects.filter(campaign_id=campaign.pk).exists()
