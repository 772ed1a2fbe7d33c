"""Retention (API.md, "Data lifecycle"): how long each tenant keeps each class of
data, and the purge that removes what is older.

* `conversations`: ended interactions with their messages (their deliveries,
  attempts and files, and whatever else hangs on an interaction, such as
  notes), by `ended_at`;
* `deliveries`: deliveries delivered or failed, with their attempts, by
  `created_at` (the message stays);
* `campaigns`: the recipients of campaigns completed or cancelled that long
  ago, by the campaign's `finished_at` (its counts stay: they are counter rows);
* `audit`: audit entries, by `at`.

A row is removed once it is older than N days: exactly N days old is kept.
The purge never touches an interaction still open, a delivery still due (or
an interaction with one), a campaign not finished (or an interaction whose
message is one of its recipients'). It works in batches of `PURGE_BATCH`
rows, each its own short transaction (conversations: at most
`PURGE_CHUNK_MESSAGES` messages a transaction), so messages keep flowing
while it runs; files leave the storage after the batch commits
(`stored_files_remove`).

Each batch is a handful of set-based statements, one a table, by primary key
(`AnyOf`: the ids as one array parameter), never Django's collector, which
fetches every row it deletes (`_delete` falls back to it for a relation added
later that nobody handled). What remains of a batch's cost on PostgreSQL is
its foreign keys' triggers at commit: each message deleted is looked up in
the four tables that point at messages.
"""

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from channels_app.audit import audit_record
from channels_app.errors import InvalidFields
from channels_app.lookups import AnyOf
from channels_app.metrics import PURGED_ROWS
from channels_app.models import (
    AuditAction,
    AuditEntry,
    Campaign,
    CampaignRecipient,
    CampaignState,
    ConferenceMember,
    ConversationSummary,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    Interaction,
    InteractionNote,
    InteractionState,
    Message,
    MessageAttachment,
    Offer,
    Tenant,
    WhatsAppMedia,
)
from channels_app.publishing import STORAGE_FILES_REMOVE, publish

logger = logging.getLogger(__name__)

RETENTION_CLASSES = ("conversations", "deliveries", "campaigns", "audit")
MAX_RETENTION_DAYS = 36_500
PURGE_BATCH = 500  # rows (interactions, deliveries, recipients, audit entries) per batch
# Messages per transaction (with their deliveries, attempts and files): a few statements each, short enough
# beside live traffic; a batch of 500 interactions of 20 messages is one chunk.
PURGE_CHUNK_MESSAGES = 10_000

# The kinds of rows a purge counts, in the order it reports them.
REMOVED_ORDER = ("interactions", "messages", "files", "deliveries", "delivery_attempts", "campaign_recipients",
                 "audit_entries")
FINISHED_CAMPAIGN = (CampaignState.COMPLETED, CampaignState.CANCELLED)
DUE_DELIVERY = (DeliveryState.PENDING, DeliveryState.WAITING)

# Attempts at removing a file from the storage after the commit that let it go (then: logged, left).
FILE_REMOVE_ATTEMPTS = 6
FILE_REMOVE_BACKOFF_SECONDS = 60


# --- settings ----------------------------------------------------------------------------------------------------


def retention_days_clean(value) -> dict:
    """The `retention_days` a tenant may hold: a dict of the classes, each a whole number of days
    0..36500 or None (kept for ever). Every error at once, each named `retention_days.<class>`."""
    if not isinstance(value, dict):
        raise InvalidFields({"retention_days": [
            f"An object of classes ({', '.join(RETENTION_CLASSES)}), each a number of days or null."]})
    errors, clean = {}, {}
    for name, days in value.items():
        field = f"retention_days.{name}"
        if name not in RETENTION_CLASSES:
            errors[field] = [f"Unknown class: use {', '.join(RETENTION_CLASSES)}."]
            continue
        if isinstance(days, float) and days.is_integer():
            days = int(days)
        if days is not None and (isinstance(days, bool) or not isinstance(days, int)):
            errors[field] = ["A whole number of days, or null to keep for ever."]
        elif days is not None and not 0 <= days <= MAX_RETENTION_DAYS:
            errors[field] = [f"Between 0 and {MAX_RETENTION_DAYS} days, or null to keep for ever."]
        else:
            clean[name] = days
    if errors:
        raise InvalidFields(errors)
    return clean


def retention_days_of(tenant: Tenant) -> dict:
    """Every class with its days (None: kept for ever)."""
    stored = tenant.retention_days or {}
    return {name: stored.get(name) for name in RETENTION_CLASSES}


@transaction.atomic
def tenant_retention_set(*, tenant: Tenant, retention_days: dict) -> Tenant:
    """Change the classes given (others keep their days; null: kept for ever). Audited as a tenant change."""
    changed = {**retention_days_of(tenant), **retention_days_clean(retention_days)}
    tenant.retention_days = changed
    tenant.save(update_fields=["retention_days"])
    return tenant


# --- files -------------------------------------------------------------------------------------------------------


def stored_files_remove(*, names: list[str]) -> list[str]:
    """Remove files from the storage (filesystem or S3, through Django's storage API); returns the names it
    could not remove (the storage failed), for another attempt."""
    failed = []
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:  # any storage error: the file is tried again later
            logger.warning("Could not remove %s from the storage; it is tried again.", name, exc_info=True)
            failed.append(name)
    return failed


def stored_files_remove_later(*, names: list[str], attempt: int = 1) -> list[str]:
    """One attempt (now) at removing the files; those the storage refused are handed to a task that tries
    again, with backoff, up to FILE_REMOVE_ATTEMPTS times."""
    failed = stored_files_remove(names=names)
    if failed and attempt < FILE_REMOVE_ATTEMPTS:
        publish(STORAGE_FILES_REMOVE, failed, attempt + 1, countdown=FILE_REMOVE_BACKOFF_SECONDS * attempt)
    elif failed:
        logger.error("Gave up removing %d file(s) from the storage: %s", len(failed), ", ".join(failed))
    return failed


def files_remove_on_commit(names: list[str]) -> None:
    """Remove the files once the transaction that let go of their rows commits (never before: a rollback
    keeps rows that would point at nothing)."""
    names = [name for name in names if name]
    if names:
        transaction.on_commit(lambda: stored_files_remove_later(names=names))


def message_files(message_ids) -> list[str]:
    """The stored files of these messages (customer attachments, their thumbnails, WhatsApp media)."""
    names = []
    for file, thumbnail in MessageAttachment.objects.filter(message_id__in=message_ids).values_list(
            "file", "thumbnail"):
        names += [file, thumbnail]
    names += WhatsAppMedia.objects.filter(message_id__in=message_ids).values_list("file", flat=True)
    return [name for name in names if name]


def _delete(queryset: QuerySet, handled: set[tuple[type, str]]) -> int:
    """Delete the rows with one statement when every relation pointing at their model is one the caller
    has already dealt with (`handled`: (model, field name) pairs); otherwise through Django's collector,
    which follows whatever else points at them (a model added later). The rows deleted."""
    model = queryset.model
    if all((relation.related_model, relation.field.name) in handled for relation in model._meta.related_objects):
        return queryset._raw_delete(queryset.db) or 0  # None when the query is empty (pk__in=[])
    return queryset.delete()[1].get(model._meta.label, 0)


MESSAGE_RELATIONS = {(Delivery, "message"), (MessageAttachment, "message"), (WhatsAppMedia, "message"),
                     (CampaignRecipient, "message")}
DELIVERY_RELATIONS = {(DeliveryAttempt, "delivery"), (Delivery, "after")}
# What hangs on an interaction besides its messages (on_delete=CASCADE), removed with it.
INTERACTION_CHILDREN = (ConversationSummary, Offer, ConferenceMember, InteractionNote)
INTERACTION_RELATIONS = {(Message, "interaction")} | {(model, "interaction") for model in INTERACTION_CHILDREN}


def _slices(ids: list, size: int):
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def deliveries_delete(delivery_ids: list) -> dict:
    """Delete deliveries by id with their attempts, in three statements (the deliveries that waited on them
    wait no more: `after` emptied, as on_delete=SET_NULL would)."""
    if not delivery_ids:
        return {"deliveries": 0, "delivery_attempts": 0}
    attempts = _delete(DeliveryAttempt.objects.filter(AnyOf(F("delivery_id"), delivery_ids)), set())
    Delivery.objects.filter(AnyOf(F("after_id"), delivery_ids)).update(after=None)
    deliveries = _delete(Delivery.objects.filter(AnyOf(F("pk"), delivery_ids)), DELIVERY_RELATIONS)
    return {"deliveries": deliveries, "delivery_attempts": attempts}


def _messages_chunk_delete(ids: list) -> dict:
    """One chunk of messages by id: each table that points at them in one statement by primary key, the
    ids read first (no statement joins back to the messages)."""
    attachments = list(MessageAttachment.objects.filter(AnyOf(F("message_id"), ids)).order_by().values_list(
        "pk", "file", "thumbnail"))
    media = list(WhatsAppMedia.objects.filter(AnyOf(F("message_id"), ids)).order_by().values_list("pk", "file"))
    removed = deliveries_delete(list(Delivery.objects.filter(AnyOf(F("message_id"), ids)).order_by().values_list(
        "pk", flat=True)))
    if attachments:
        _delete(MessageAttachment.objects.filter(AnyOf(F("pk"), [row[0] for row in attachments])), set())
    if media:
        _delete(WhatsAppMedia.objects.filter(AnyOf(F("pk"), [row[0] for row in media])), set())
    CampaignRecipient.objects.filter(AnyOf(F("message_id"), ids)).update(message=None)
    removed["messages"] = _delete(Message.objects.filter(AnyOf(F("pk"), ids)), MESSAGE_RELATIONS)
    names = [name for _, file, thumbnail in attachments for name in (file, thumbnail) if name]
    names += [file for _, file in media if file]
    files_remove_on_commit(names)
    removed["files"] = len(names)
    return removed


def messages_delete(message_ids) -> dict:
    """Delete messages (a list of ids, or a query of them) with their deliveries, attempts and files (rows
    now, files after the commit); campaign recipients keep their row (its message becomes empty). A few
    statements per PURGE_CHUNK_MESSAGES messages, in the caller's transaction: a contact with 10,000 goes
    in well under a second. The counts removed."""
    if isinstance(message_ids, QuerySet):
        message_ids = list(message_ids.values_list("pk", flat=True))
    removed = {"messages": 0, "files": 0, "deliveries": 0, "delivery_attempts": 0}
    for ids in _slices(list(message_ids), PURGE_CHUNK_MESSAGES):
        _add(removed, _messages_chunk_delete(ids))
    return removed


def interactions_delete(interaction_ids: list) -> int:
    """Delete interactions by id with what hangs on them (notes, offers, conference members, report
    summaries), one statement a table; their messages must be gone already (messages_delete). The
    interactions deleted (what went with them is not counted)."""
    for model in INTERACTION_CHILDREN:
        _delete(model.objects.filter(AnyOf(F("interaction_id"), interaction_ids)), set())
    return _delete(Interaction.objects.filter(AnyOf(F("pk"), interaction_ids)), INTERACTION_RELATIONS)


# --- what each class removes -------------------------------------------------------------------------------------


def purgeable_interactions(*, tenant_id: int, cutoff: datetime) -> QuerySet:
    """Ended before the cutoff, with no delivery still due and no message of an unfinished campaign."""
    due = Delivery.objects.filter(message__interaction=OuterRef("pk"), state__in=DUE_DELIVERY)
    campaign_running = CampaignRecipient.objects.filter(
        message__interaction=OuterRef("pk")).exclude(campaign__state__in=FINISHED_CAMPAIGN)
    return (Interaction.objects.filter(channel__tenant_id=tenant_id, state=InteractionState.ENDED,
                                       ended_at__lt=cutoff)
            .filter(~Exists(due), ~Exists(campaign_running)))


def purgeable_deliveries(*, tenant_id: int, cutoff: datetime) -> QuerySet:
    """Delivered or failed, created before the cutoff, no delivery waiting on them."""
    waiting = Delivery.objects.filter(after=OuterRef("pk"), state__in=DUE_DELIVERY)
    return (Delivery.objects.filter(channel__tenant_id=tenant_id, created_at__lt=cutoff)
            .exclude(state__in=DUE_DELIVERY).filter(~Exists(waiting)))


def purgeable_recipients(*, tenant_id: int, cutoff: datetime) -> QuerySet:
    finished = Campaign.objects.filter(channel__tenant_id=tenant_id, state__in=FINISHED_CAMPAIGN,
                                       finished_at__lt=cutoff)
    return CampaignRecipient.objects.filter(campaign__in=finished)


def purgeable_audit_entries(*, tenant_id: int, cutoff: datetime) -> QuerySet:
    return AuditEntry.objects.filter(tenant_id=tenant_id, at__lt=cutoff)


def _conversations_delete(ids: list, still: QuerySet) -> dict:
    """A batch of interactions: in transactions of at most PURGE_CHUNK_MESSAGES messages (no transaction
    holds a whole long conversation), their messages, then, with the last of them, the interactions. Each
    transaction first checks the batch again against `still` (the class's query): an interaction that
    stopped being purgeable meanwhile (a delivery retried) stays."""
    removed: dict[str, int] = {}
    while ids:
        with transaction.atomic():
            ids = list(still.filter(AnyOf(F("pk"), ids)).values_list("pk", flat=True))
            if not ids:
                break
            chunk = list(Message.objects.filter(AnyOf(F("interaction_id"), ids)).order_by().values_list(
                "pk", flat=True)[:PURGE_CHUNK_MESSAGES])
            if chunk:
                _add(removed, messages_delete(chunk))
            if len(chunk) < PURGE_CHUNK_MESSAGES:
                _add(removed, {"interactions": interactions_delete(ids)})
                break
    return removed


@transaction.atomic
def _deliveries_delete(ids: list, still: QuerySet) -> dict:
    return deliveries_delete(list(still.filter(AnyOf(F("pk"), ids)).values_list("pk", flat=True)))


def _rows_delete(model, key: str):
    @transaction.atomic
    def delete(ids: list, still: QuerySet) -> dict:
        return {key: _delete(still.filter(AnyOf(F("pk"), ids)), set())}
    return delete


def _dry_counts(kind: str, queryset: QuerySet) -> dict:
    """What a purge of this class would remove, counted without removing it."""
    if kind == "conversations":
        messages = Message.objects.filter(interaction__in=queryset)
        return {
            "interactions": queryset.count(),
            "messages": messages.count(),
            "files": len(message_files(messages.values("pk"))),
            "deliveries": Delivery.objects.filter(message__in=messages).count(),
            "delivery_attempts": DeliveryAttempt.objects.filter(delivery__message__in=messages).count(),
        }
    if kind == "deliveries":
        return {"deliveries": queryset.count(),
                "delivery_attempts": DeliveryAttempt.objects.filter(delivery__in=queryset).count()}
    return {"campaign_recipients" if kind == "campaigns" else "audit_entries": queryset.count()}


CLASSES = {
    # class: (what may go, the field its batches follow (then the primary key), how a batch goes: in
    # transactions of its own)
    "conversations": (purgeable_interactions, "ended_at", _conversations_delete),
    "deliveries": (purgeable_deliveries, "created_at", _deliveries_delete),
    "campaigns": (purgeable_recipients, "pk", _rows_delete(CampaignRecipient, "campaign_recipients")),
    "audit": (purgeable_audit_entries, "at", _rows_delete(AuditEntry, "audit_entries")),
}


def _after(order: str, value, pk) -> Q:
    """The rows after (value, pk) in the order (`order`, pk). The `>=` alone is what the index on `order`
    starts its range at; the rest settles ties."""
    if order == "pk":
        return Q(pk__gt=pk)
    return Q(**{f"{order}__gte": value}) & (Q(**{f"{order}__gt": value}) | Q(**{order: value, "pk__gt": pk}))


def _add(total: dict, counts: dict) -> None:
    for key, count in counts.items():
        total[key] = total.get(key, 0) + count


# --- the purge ---------------------------------------------------------------------------------------------------


def tenant_purge(*, tenant: Tenant, now: datetime | None = None, dry_run: bool = False,
                 batch_size: int = PURGE_BATCH) -> dict:
    """Remove what `tenant` keeps no longer (or, `dry_run`, count it). Each batch is its own transaction:
    a purge stopped half-way has removed whole batches only, and the next one carries on. Records what it
    removed: `last_purge`, an audit entry, a log line, the metric `dms_purged_rows`. Returns the counts."""
    now = now or timezone.now()
    removed: dict[str, int] = {}
    for kind, days in retention_days_of(tenant).items():
        if days is None:
            continue
        cutoff = now - timedelta(days=days)
        select, order, delete = CLASSES[kind]
        queryset = select(tenant_id=tenant.pk, cutoff=cutoff)
        if dry_run:
            _add(removed, _dry_counts(kind, queryset))
            continue
        # Batches follow the class's index (ended_at, created_at, at) from where the last one stopped, so no
        # query walks again over what earlier batches removed or kept.
        ordered = queryset.order_by(order, "pk")
        after = None
        while True:
            started = time.monotonic()
            following = ordered if after is None else ordered.filter(_after(order, *after))
            rows = list(following.values_list(order, "pk")[:batch_size])
            if not rows:
                break
            after = rows[-1]
            _add(removed, delete([pk for _, pk in rows], queryset))
            # A pause in proportion to the batch (PURGE_PAUSE_RATIO): the messages beside the purge keep
            # their pace.
            time.sleep((time.monotonic() - started) * settings.PURGE_PAUSE_RATIO)
    removed = {name: removed[name] for name in REMOVED_ORDER if name in removed}
    if dry_run:
        return removed
    _purge_record(tenant=tenant, now=now, removed=removed)
    return removed


@transaction.atomic
def _purge_record(*, tenant: Tenant, now: datetime, removed: dict) -> None:
    record = {"at": now.isoformat(), "removed": removed}
    Tenant.objects.filter(pk=tenant.pk).update(last_purge=record)  # an update: not a configuration change
    tenant.last_purge = record
    if any(removed.values()):
        summary = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in removed.items() if count)
        audit_record(action=AuditAction.PURGE, object_type="tenant", object_id=tenant.pk,
                     object_repr=f"retention: removed {summary}"[:300], changes={"removed": [None, removed]},
                     tenant_id=tenant.pk, system=True)
    for name, count in removed.items():
        if count:
            PURGED_ROWS.labels(name).inc(count)
    logger.info("Purge of tenant %s: removed %s", tenant.pk,
                ", ".join(f"{name}={count}" for name, count in removed.items()) or "nothing")


def purge(*, tenant_id: int | None = None, now: datetime | None = None, dry_run: bool = False) -> dict[int, dict]:
    """Purge every tenant with a retention set (or the one named): {tenant id: counts}."""
    tenants = Tenant.objects.order_by("pk")
    if tenant_id is not None:
        tenants = tenants.filter(pk=tenant_id)
    return {tenant.pk: tenant_purge(tenant=tenant, now=now, dry_run=dry_run)
            for tenant in tenants if any(days is not None for days in retention_days_of(tenant).values())}


def purge_tenants_due(*, now: datetime | None = None) -> int:
    """The daily task: every tenant with a retention set; returns the rows removed."""
    return sum(sum(counts.values()) for counts in purge(now=now).values())
