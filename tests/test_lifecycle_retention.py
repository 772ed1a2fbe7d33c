"""Retention per tenant (API.md, "Data lifecycle"; issue 26, item 1): the settings on the tenant, and the
purge of each class at its boundaries (exactly N days is kept), never an open interaction, a delivery still
due or a campaign not finished."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.management import call_command
from django.utils import timezone
from prometheus_client import REGISTRY

from channels_app import tasks
from channels_app.models import (
    AuditEntry,
    CampaignRecipient,
    Delivery,
    DeliveryAttempt,
    Interaction,
    Message,
    MessageAttachment,
    Tenant,
)
from channels_app.services.campaigns import campaign_counts
from channels_app.services.lifecycle import stored_files_remove_later, tenant_purge
from tests.conftest import _client_for, member
from tests.factories import ChannelFactory, StandardResponseFactory, TenantFactory
from tests.lifecycle_data import campaign_with_recipients, conversation, stored_names

DAYS = 30


def _retain(tenant, **days):
    Tenant.objects.filter(pk=tenant.pk).update(retention_days=days)
    tenant.refresh_from_db()
    return tenant


# --- the settings ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_retention_days_are_set_and_shown_on_the_tenant(staff_api, tenant):
    # when
    answer = staff_api.patch(f"/api/tenants/{tenant.pk}/", {"retention_days": {
        "conversations": 365, "deliveries": 90, "campaigns": 180, "audit": 730}}, format="json")
    # then
    assert answer.status_code == 200, answer.content
    assert answer.json()["retention_days"] == {"conversations": 365, "deliveries": 90, "campaigns": 180,
                                               "audit": 730}
    # a PATCH changes the classes it names; null keeps for ever
    answer = staff_api.patch(f"/api/tenants/{tenant.pk}/", {"retention_days": {"audit": None}}, format="json")
    assert answer.json()["retention_days"] == {"conversations": 365, "deliveries": 90, "campaigns": 180,
                                               "audit": None}
    shown = staff_api.get(f"/api/tenants/{tenant.pk}/").json()
    assert shown["retention_days"]["conversations"] == 365
    assert shown["last_purge"] is None
    assert AuditEntry.objects.filter(object_type="tenant", object_id=str(tenant.pk), action="update").exists()


@pytest.mark.django_db
def test_a_new_tenant_keeps_everything_for_ever(staff_api, tenant):
    shown = staff_api.get(f"/api/tenants/{tenant.pk}/").json()
    assert shown["retention_days"] == {"conversations": None, "deliveries": None, "campaigns": None, "audit": None}


@pytest.mark.django_db
@pytest.mark.parametrize(("value", "field"), [
    ({"conversations": -1}, "retention_days.conversations"),
    ({"deliveries": 1.5}, "retention_days.deliveries"),
    ({"campaigns": "30"}, "retention_days.campaigns"),
    ({"audit": 36501}, "retention_days.audit"),
    ({"audit": True}, "retention_days.audit"),
    ({"messages": 30}, "retention_days.messages"),
    ([30], "retention_days"),
])
def test_bad_retention_days_are_a_400_naming_the_field_and_change_nothing(staff_api, tenant, value, field):
    answer = staff_api.patch(f"/api/tenants/{tenant.pk}/", {"name": "Renamed", "retention_days": value},
                             format="json")
    assert answer.status_code == 400
    assert field in answer.json(), answer.json()
    tenant.refresh_from_db()
    assert tenant.name == "Environment" and tenant.retention_days == {}


@pytest.mark.django_db
def test_the_edges_of_retention_days_are_accepted(staff_api, tenant):
    answer = staff_api.patch(f"/api/tenants/{tenant.pk}/", {"retention_days": {
        "conversations": 0, "audit": 36500, "deliveries": 7.0}}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["retention_days"]["deliveries"] == 7


@pytest.mark.django_db
def test_another_tenants_retention_is_a_404(tenant):
    other = TenantFactory(id=2, name="Other")
    api = _client_for(member("dpo", "Administrator", tenants=[tenant]))
    answer = api.patch(f"/api/tenants/{other.pk}/", {"retention_days": {"audit": 1}}, format="json")
    assert answer.status_code == 404


# --- conversations -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_conversations_ended_longer_ago_than_the_retention_go_with_messages_deliveries_and_files(
        channel, django_capture_on_commit_callbacks):
    # given
    now = timezone.now()
    tenant = _retain(channel.tenant, conversations=DAYS)
    old = conversation(channel, client_id="15550000001", ended_at=now - timedelta(days=DAYS, seconds=1))
    exactly = conversation(channel, client_id="15550000002", ended_at=now - timedelta(days=DAYS))
    recent = conversation(channel, client_id="15550000003", ended_at=now - timedelta(days=DAYS - 1))
    open_old = conversation(channel, client_id="15550000004")
    Interaction.objects.filter(pk=open_old.pk).update(created_at=now - timedelta(days=400))
    old_files = stored_names([old])
    assert all(default_storage.exists(name) for name in old_files)
    # when: the files leave the storage once the batch commits
    with django_capture_on_commit_callbacks(execute=True):
        removed = tenant_purge(tenant=tenant, now=now)
    # then
    assert removed == {"interactions": 1, "messages": 2, "files": 2, "deliveries": 1, "delivery_attempts": 1}
    assert set(Interaction.objects.values_list("pk", flat=True)) == {exactly.pk, recent.pk, open_old.pk}
    assert not Message.objects.filter(interaction_id=old.pk).exists()
    assert not any(default_storage.exists(name) for name in old_files)
    assert all(default_storage.exists(name) for name in stored_names([exactly, recent, open_old]))
    assert Delivery.objects.count() == 3 and DeliveryAttempt.objects.count() == 3
    assert old.contact.__class__.objects.filter(pk=old.contact_id).exists()  # contacts are not a class


@pytest.mark.django_db
def test_a_conversation_with_a_delivery_still_due_is_kept(channel):
    now = timezone.now()
    tenant = _retain(channel.tenant, conversations=DAYS)
    due = conversation(channel, ended_at=now - timedelta(days=DAYS + 5), delivery_state="pending")
    assert tenant_purge(tenant=tenant, now=now) == {}
    assert Interaction.objects.filter(pk=due.pk).exists()


@pytest.mark.django_db
def test_a_conversation_of_a_campaign_still_running_is_kept_and_one_finished_goes(channel):
    # given
    now = timezone.now()
    tenant = _retain(channel.tenant, conversations=DAYS)
    response = StandardResponseFactory(tenant=tenant)
    running = campaign_with_recipients(channel, response, state="running", finished_at=None)
    done = campaign_with_recipients(channel, response, state="completed", finished_at=now)
    kept = conversation(channel, client_id="15550000001", ended_at=now - timedelta(days=DAYS + 5), with_file=False)
    gone = conversation(channel, client_id="15550000002", ended_at=now - timedelta(days=DAYS + 5), with_file=False)
    CampaignRecipient.objects.filter(campaign=running, row_number=1).update(
        message=kept.messages.filter(direction="outbound").get())
    CampaignRecipient.objects.filter(campaign=done, row_number=2).update(
        message=gone.messages.filter(direction="outbound").get())
    counts = campaign_counts(campaign=done)
    # when
    tenant_purge(tenant=tenant, now=now)
    # then
    assert set(Interaction.objects.values_list("pk", flat=True)) == {kept.pk}
    assert CampaignRecipient.objects.filter(campaign=done).count() == 2  # the row stays, its message is gone
    assert campaign_counts(campaign=done) == counts


# --- deliveries --------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_deliveries_older_than_the_retention_go_with_their_attempts_and_the_message_stays(channel):
    # given
    now = timezone.now()
    tenant = _retain(channel.tenant, deliveries=DAYS)
    conversation(channel, client_id="15550000001", with_file=False)
    conversation(channel, client_id="15550000002", with_file=False)
    conversation(channel, client_id="15550000003", with_file=False, delivery_state="pending")
    conversation(channel, client_id="15550000004", with_file=False, delivery_state="failed")
    deliveries = list(Delivery.objects.order_by("pk"))
    Delivery.objects.filter(pk__in=[deliveries[0].pk, deliveries[2].pk, deliveries[3].pk]).update(
        created_at=now - timedelta(days=DAYS, seconds=1))
    Delivery.objects.filter(pk=deliveries[1].pk).update(created_at=now - timedelta(days=DAYS))  # exactly N days
    # when
    removed = tenant_purge(tenant=tenant, now=now)
    # then
    assert removed == {"deliveries": 2, "delivery_attempts": 2}
    assert set(Delivery.objects.values_list("pk", flat=True)) == {deliveries[1].pk, deliveries[2].pk}
    assert Message.objects.count() == 8


# --- campaigns ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_recipients_of_campaigns_finished_longer_ago_go_and_their_counts_stay(channel):
    # given
    now = timezone.now()
    tenant = _retain(channel.tenant, campaigns=DAYS)
    response = StandardResponseFactory(tenant=tenant)
    old = campaign_with_recipients(channel, response, state="completed",
                                   finished_at=now - timedelta(days=DAYS, seconds=1))
    cancelled = campaign_with_recipients(channel, response, state="cancelled",
                                         finished_at=now - timedelta(days=DAYS + 3))
    exactly = campaign_with_recipients(channel, response, state="completed", finished_at=now - timedelta(days=DAYS))
    running = campaign_with_recipients(channel, response, state="running", finished_at=None)
    paused = campaign_with_recipients(channel, response, state="paused", finished_at=None)
    counts = campaign_counts(campaign=old)
    # when
    removed = tenant_purge(tenant=tenant, now=now)
    # then
    assert removed == {"campaign_recipients": 4}
    assert not CampaignRecipient.objects.filter(campaign__in=[old, cancelled]).exists()
    assert CampaignRecipient.objects.filter(campaign__in=[exactly, running, paused]).count() == 6
    assert campaign_counts(campaign=old) == counts and counts["total"] == 2


# --- audit -------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_audit_entries_older_than_the_retention_go_and_other_tenants_keep_theirs(channel):
    # given
    now = timezone.now()
    tenant = _retain(channel.tenant, audit=DAYS)
    other = TenantFactory(id=2, name="Other")
    AuditEntry.objects.all().delete()
    entries = [AuditEntry.objects.create(tenant=t, action="update", object_type="channel", object_id=str(n))
               for n, t in enumerate([tenant, tenant, other])]
    AuditEntry.objects.filter(pk__in=[entries[0].pk, entries[2].pk]).update(at=now - timedelta(days=DAYS + 1))
    AuditEntry.objects.filter(pk=entries[1].pk).update(at=now - timedelta(days=DAYS))
    # when
    removed = tenant_purge(tenant=tenant, now=now)
    # then
    assert removed == {"audit_entries": 1}
    assert set(AuditEntry.objects.exclude(action="purge").values_list("pk", flat=True)) == {
        entries[1].pk, entries[2].pk}


# --- running a purge ---------------------------------------------------------------------------------------------


def _metric(kind: str) -> float:
    return REGISTRY.get_sample_value("dms_purged_rows_total", {"kind": kind}) or 0


@pytest.mark.django_db
def test_a_purge_records_what_it_removed(channel, caplog):
    # given
    now = timezone.now()
    tenant = _retain(channel.tenant, conversations=0)
    for number in range(5):
        conversation(channel, client_id=f"1555000000{number}", ended_at=now - timedelta(minutes=1), with_file=False)
    before = _metric("interactions")
    # when: batches of 2 rows, each its own transaction
    with caplog.at_level("INFO", logger="channels_app.services.lifecycle"):
        removed = tenant_purge(tenant=tenant, now=now, batch_size=2)
    # then
    assert removed["interactions"] == 5 and not Interaction.objects.exists()
    tenant.refresh_from_db()
    assert tenant.last_purge == {"at": now.isoformat(), "removed": removed}
    entry = AuditEntry.objects.get(action="purge")
    assert entry.tenant_id == tenant.pk and entry.username == "system"
    assert entry.changes == {"removed": [None, removed]}
    assert "5 interactions" in entry.object_repr
    assert _metric("interactions") - before == 5
    assert "Purge of tenant 1: removed interactions=5" in caplog.text


@pytest.mark.django_db
def test_conversations_longer_than_a_chunk_go_in_several_transactions_and_all_go(
        channel, monkeypatch, django_capture_on_commit_callbacks):
    # given: chunks of 3 messages, batches of 2 interactions of 3 messages each (one with a file)
    monkeypatch.setattr("channels_app.services.lifecycle.PURGE_CHUNK_MESSAGES", 3)
    now = timezone.now()
    tenant = _retain(channel.tenant, conversations=DAYS)
    old = [conversation(channel, client_id=f"1555000000{number}", ended_at=now - timedelta(days=DAYS + number),
                        with_file=number == 1) for number in range(1, 6)]
    for interaction in old:
        Message.objects.create(interaction=interaction, channel=channel, direction="inbound", text="Thanks")
    kept = conversation(channel, client_id="15550000009", ended_at=now - timedelta(days=DAYS - 1))
    files = stored_names(old)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        removed = tenant_purge(tenant=tenant, now=now, batch_size=2)
    # then
    assert removed == {"interactions": 5, "messages": 15, "files": 2, "deliveries": 5, "delivery_attempts": 5}
    assert list(Interaction.objects.values_list("pk", flat=True)) == [kept.pk]
    assert Message.objects.filter(interaction=kept).count() == 2 and Delivery.objects.count() == 1
    assert not any(default_storage.exists(name) for name in files)


@pytest.mark.django_db
def test_the_command_dry_run_counts_and_removes_nothing_and_tenant_narrows_it(channel):
    # given
    now = timezone.now()
    tenant = _retain(channel.tenant, conversations=DAYS)
    other = _retain(TenantFactory(id=2, name="Other"), conversations=DAYS)
    other_channel = ChannelFactory(tenant=other, channel_id="other-channel")
    conversation(channel, ended_at=now - timedelta(days=DAYS + 1))
    conversation(other_channel, ended_at=now - timedelta(days=DAYS + 1))
    # when
    out = StringIO()
    call_command("purge", "--dry-run", stdout=out)
    # then
    assert "Tenant 1: would remove 1 interactions, 2 messages, 2 files, 1 deliveries, 1 delivery attempts." \
        in out.getvalue()
    assert Interaction.objects.count() == 2 and MessageAttachment.objects.count() == 2
    tenant.refresh_from_db()
    assert tenant.last_purge is None
    # when
    out = StringIO()
    call_command("purge", "--tenant", "2", stdout=out)
    # then
    assert out.getvalue().startswith("Tenant 2: removed 1 interactions")
    assert list(Interaction.objects.values_list("channel__tenant_id", flat=True)) == [1]


@pytest.mark.django_db
def test_the_daily_task_purges_every_tenant_with_a_retention(channel):
    tenant = _retain(channel.tenant, conversations=1)
    conversation(channel, ended_at=timezone.now() - timedelta(days=2), with_file=False)
    assert tasks.purge() == 5  # the interaction, 2 messages, the delivery and its attempt
    tenant.refresh_from_db()
    assert tenant.last_purge["removed"]["interactions"] == 1


class FlakyStorage(FileSystemStorage):
    """A storage whose deletes fail while `failing` is set (an S3 outage, a read-only disk)."""

    failing = True

    def delete(self, name):
        if FlakyStorage.failing:
            raise OSError("the storage is down")
        super().delete(name)


@pytest.mark.django_db
def test_files_the_storage_could_not_remove_are_tried_again(settings, tmp_path):
    # given
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "tests.test_lifecycle_retention.FlakyStorage", "OPTIONS": {"location": str(tmp_path / "m")}}}
    name = default_storage.save("inbound/x.jpg", __import__("io").BytesIO(b"picture"))
    FlakyStorage.failing = True
    # when
    assert stored_files_remove_later(names=[name]) == [name]
    assert default_storage.exists(name)
    FlakyStorage.failing = False
    # then: the retry (the task the first attempt published) removes it
    assert tasks.storage_files_remove([name], 2) == 0
    assert not default_storage.exists(name)


@pytest.mark.django_db
def test_rows_with_a_relation_nobody_handled_go_through_djangos_collector(channel):
    """One statement deletes messages only when every relation pointing at them was dealt with; a model
    added later that points at messages is followed by Django's collector instead, never left dangling."""
    from channels_app.services.lifecycle import MESSAGE_RELATIONS, _delete

    interaction = conversation(channel, with_file=False)
    message = interaction.messages.get(direction="outbound")
    # when: the delivery's relation is not among those handled
    deleted = _delete(Message.objects.filter(pk=message.pk), MESSAGE_RELATIONS - {(Delivery, "message")})
    # then: the collector took the delivery and its attempt along
    assert deleted == 1
    assert not Delivery.objects.filter(message_id=message.pk).exists() and not DeliveryAttempt.objects.exists()


def test_the_daily_purge_runs_in_the_bulk_lane_never_in_a_persons():
    from project.celery import app

    assert app.amqp.router.route({}, "channels_app.purge")["queue"].name == "bulk"
