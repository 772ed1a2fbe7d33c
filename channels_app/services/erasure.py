"""The right to erasure (API.md, "Data lifecycle": `POST /api/contacts/{id}/erase/`).

`PERSONAL_DATA` is the one list of the models that hold a customer's data,
each with the step that erases it; `NO_PERSONAL_DATA` names every other model
and why it holds none. `tests/test_lifecycle_erasure.py` walks every model of
the project and fails when one is in neither: a new model that holds personal
data (a note, an offer's preview, a report row) gets its step here before it
ships.

One transaction per contact: an erasure that fails half-way leaves nothing
half-erased. Files leave the storage after the commit (and are tried again if
the storage fails, `lifecycle.stored_files_remove_later`). Where a figure must
stay (a campaign's counts), the row stays, stripped of every personal field.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import F, Q, QuerySet, TextField
from django.db.models.functions import Cast

from channels_app.audit import audit_record
from channels_app.models import (
    AgentEvent,
    AuditAction,
    AuditEntry,
    CampaignCounter,
    CampaignRecipient,
    CampaignState,
    Contact,
    ContactOptOut,
    Interaction,
    Message,
    WhatsAppInbox,
)
from channels_app.models.campaigns import COUNTER_SHARDS
from channels_app.services.lifecycle import interactions_delete, message_files, messages_delete

ERASED = "(erased)"
ERASED_REASON = "erased: the contact exercised the right to erasure"
# Identities shorter than this are not searched for in free text (audit values, raw webhooks): too common.
SHORTEST_SEARCHED = 6


@dataclass
class Erasure:
    """What one erasure works on and what it has removed so far."""

    contact: Contact
    interaction_ids: list[str]
    message_ids: QuerySet  # of the contact's messages, evaluated by each step inside its statement
    identities: set[str]
    erased: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, number: int) -> None:
        self.erased[name] = self.erased.get(name, 0) + number


def _identities(contact: Contact, interaction_ids: list[str]) -> set[str]:
    """The values that name the customer: phone number (with and without +), client ids, e-mail."""
    found = {contact.phone_number, contact.phone_number.lstrip("+"), contact.client_id, contact.email}
    found |= set(Interaction.objects.filter(pk__in=interaction_ids).values_list("client_id", flat=True))
    return {value for value in found if value}


# --- the steps, one per model that holds personal data ----------------------------------------------------------


def _campaign_rows(erasure: Erasure) -> None:
    """Campaign rows are stripped, not removed: the campaign's counts stay right. In a campaign not
    finished, a row not yet sent is refused (the campaign will not reach an erased customer), and a row
    already sent is marked too, so that it is not sent again once its message is gone, keeping its place in
    the counts (the refused count the trigger of migration 0019 adds is taken back)."""
    rows = CampaignRecipient.objects.filter(campaign__channel__tenant_id=erasure.contact.tenant_id).filter(
        Q(message_id__in=erasure.message_ids) | Q(client_id__in=erasure.identities))
    for row in rows.select_related("campaign").only("pk", "error", "message_id", "campaign__state"):
        finished = row.campaign.state in (CampaignState.COMPLETED, CampaignState.CANCELLED)
        error = ERASED_REASON if row.error or not finished else ""
        CampaignRecipient.objects.filter(pk=row.pk).update(
            client_id=f"{ERASED} {row.pk}", contact_fields={}, custom_properties={}, claimed_until=None,
            error=error)
        if not row.error and error and row.message_id is not None:
            shard = row.pk % COUNTER_SHARDS if connection.vendor == "postgresql" else 0
            CampaignCounter.objects.filter(campaign_id=row.campaign_id, shard=shard).update(
                refused=F("refused") - 1)
        erasure.count("campaign_rows", 1)


def _messages(erasure: Erasure) -> None:
    """Messages with their deliveries, attempts (request and answer excerpts) and files."""
    removed = messages_delete(erasure.message_ids)
    for name, number in removed.items():
        erasure.count(name, number)


def _interactions(erasure: Erasure) -> None:
    # Whatever else hangs on an interaction (notes, offers, report summaries) goes with it; the count is of
    # the interactions alone.
    erasure.count("interactions", interactions_delete(erasure.interaction_ids))


def _agent_events(erasure: Erasure) -> None:
    """The agents' live events carry messages' texts and previews: those of the contact's interactions go
    (message, receipt and offer events name the interaction; an interaction event is the interaction)."""
    ids = list(erasure.interaction_ids)
    if not ids:
        return
    deleted, _ = AgentEvent.objects.filter(
        Q(data__interaction__in=ids) | Q(kind="interaction", data__id__in=ids)).delete()
    if deleted:  # only where the built-in routing ran
        erasure.count("agent_events", deleted)


def _opt_outs(erasure: Erasure) -> None:
    deleted, _ = ContactOptOut.objects.filter(contact=erasure.contact).delete()
    erasure.count("opt_outs", deleted)


def _raw_webhooks(erasure: Erasure) -> None:
    """WhatsApp webhooks kept as received name the customer's number (wa_id) and hold their words."""
    searched = [value for value in erasure.identities if len(value) >= SHORTEST_SEARCHED]
    if not searched:
        return
    query = Q()
    for value in searched:
        query |= Q(body__contains=value)
    deleted, _ = WhatsAppInbox.objects.filter(channel__tenant_id=erasure.contact.tenant_id).filter(query).delete()
    erasure.count("webhooks", deleted)


def _audit_entries(erasure: Erasure) -> None:
    """Entries about the contact, or whose values name them: their before/after values scrubbed (the entry
    itself, who did what when, stays)."""
    searched = [value for value in erasure.identities if len(value) >= SHORTEST_SEARCHED]
    query = Q(object_type="contact", object_id=str(erasure.contact.pk))
    for value in searched:
        query |= Q(changes_text__contains=value) | Q(object_repr__contains=value)
    entries = (AuditEntry.objects.filter(tenant_id=erasure.contact.tenant_id)
               .annotate(changes_text=Cast("changes", TextField())).filter(query).exclude(action=AuditAction.ERASE))
    for entry in entries:
        entry.changes = {name: [ERASED, ERASED] if _names(pair, searched) else pair
                         for name, pair in entry.changes.items()}
        if entry.object_type == "contact" or _names(entry.object_repr, searched):
            entry.object_repr = ERASED
        AuditEntry.objects.filter(pk=entry.pk).update(changes=entry.changes, object_repr=entry.object_repr)
        erasure.count("audit_entries", 1)


def _names(value, searched: list[str]) -> bool:
    text = str(value)
    return any(identity in text for identity in searched)


def _contact(erasure: Erasure) -> None:
    erasure.contact.delete()
    erasure.count("contacts", 1)


# Model label -> its erasure step, run in this order (rows that point at others go first).
PERSONAL_DATA: dict[str, Callable[[Erasure], None]] = {
    "channels_app.CampaignRecipient": _campaign_rows,
    "channels_app.DeliveryAttempt": _messages,  # request and answer excerpts: with the messages
    "channels_app.Delivery": _messages,
    "channels_app.MessageAttachment": _messages,  # and their files in the storage
    "channels_app.WhatsAppMedia": _messages,
    "channels_app.Message": _messages,
    "channels_app.AgentEvent": _agent_events,  # before the interactions: it finds them by their ids
    "channels_app.InteractionNote": _interactions,  # an interaction's notes go with it (CASCADE)
    "channels_app.Offer": _interactions,  # an offer's preview is the customer's first words; goes with it
    "channels_app.Interaction": _interactions,
    "channels_app.ContactOptOut": _opt_outs,
    "channels_app.WhatsAppInbox": _raw_webhooks,
    "channels_app.AuditEntry": _audit_entries,
    "channels_app.Contact": _contact,
}

# Model label -> why it holds no customer's data.
NO_PERSONAL_DATA: dict[str, str] = {
    "channels_app.Tenant": "configuration",
    "channels_app.Membership": "users of the server, not customers",
    "channels_app.Channel": "configuration",
    "channels_app.Endpoint": "configuration",
    "channels_app.OptionValue": "configuration",
    "channels_app.BusinessAttribute": "configuration",
    "channels_app.BusinessAttributeValue": "configuration",
    "channels_app.StandardResponse": "the library: texts with field codes, not their values",
    "channels_app.StandardResponseCategory": "the library",
    "channels_app.Attachment": "the library's files (what agents send), not customers' files",
    "channels_app.Campaign": "a campaign's settings; its audience is CampaignRecipient",
    "channels_app.Segment": "a filter over contacts (attribute values, channels, countries): no customer's data",
    "channels_app.CampaignCounter": "counts only",
    "channels_app.CampaignVariant": "a campaign's settings: which standard response, which share",
    "channels_app.CampaignReportCount": "counts only",
    "channels_app.CampaignReportDelta": "counts only, kept until the next fold",
    "channels_app.CampaignReportFold": "how far the campaign report's fold has read",
    "channels_app.EarlyReceipt": "a third party's message id and a status, kept minutes",
    "channels_app.WhatsAppTemplate": "configuration",
    "channels_app.ChannelThrottle": "a channel's send slot",
    "channels_app.Queue": "configuration: a chat queue key, its routing and agents",
    "channels_app.AgentState": "an agent's readiness and capacity (users of the server, not customers)",
    "channels_app.ConferenceMember": "which agent joined which interaction; goes with the interaction",
    "channels_app.ConversationSummary": "an interaction's counts and times for the reports; goes with it (CASCADE)",
    "channels_app.ReportRollup": "counts and times per queue, channel, agent or disposition and hour",
    "channels_app.ChannelOutage": "when a channel's circuit was open",
    "channels_app.ReportWatermark": "up to when the reports' fold has read",
}


@transaction.atomic
def contact_erase(*, contact: Contact) -> dict[str, int]:
    """Erase a contact and every row that holds their personal data (PERSONAL_DATA), in one transaction;
    records who erased which contact id (no personal data). The next message from the same number makes a
    new contact. Returns what was erased, by kind."""
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    interaction_ids = list(Interaction.objects.filter(contact=contact).values_list("pk", flat=True))
    erasure = Erasure(
        contact=contact,
        interaction_ids=interaction_ids,
        message_ids=Message.objects.filter(interaction__contact=contact).values("pk"),  # a query, not a list
        identities=_identities(contact, interaction_ids),
    )
    contact_id, tenant_id = contact.pk, contact.tenant_id
    done = set()
    for step in PERSONAL_DATA.values():
        if step not in done:
            done.add(step)
            step(erasure)
    erased = {"interactions": 0, "messages": 0, "files": 0, **erasure.erased}
    audit_record(action=AuditAction.ERASE, object_type="contact", object_id=contact_id,
                 object_repr=f"contact {contact_id}", changes={"erased": [None, erased]}, tenant_id=tenant_id)
    return erased


def contact_erasure_preview(*, contact: Contact) -> dict[str, int]:
    """What erasing the contact would remove (for a confirmation page): interactions, messages, files."""
    messages = Message.objects.filter(interaction__contact=contact)
    return {
        "interactions": Interaction.objects.filter(contact=contact).count(),
        "messages": messages.count(),
        "files": len(message_files(messages.values("pk"))),
    }
