"""Contacts, interactions (chat sessions) and their messages."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from channels_app.ids import time_ordered_id
from channels_app.models.configuration import Channel, Tenant


def generate_interaction_id() -> str:
    """A 16-character id, the `_umsChatSessionId` / InteractionId of a chat session: growing with time, 53.6
    random bits (channels_app/ids.py)."""
    return time_ordered_id(16)


def generate_message_id() -> str:
    """A 20-character id, growing with time, 77.4 random bits (channels_app/ids.py)."""
    return time_ordered_id(20)


class Contact(models.Model):
    """A customer of a tenant, identified by phone number (E.164) or by the
    channel's client id. The same number in two tenants is two contacts."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="contacts")

    phone_number = models.CharField(max_length=32, blank=True, help_text="E.164, e.g. +15556667777.")
    client_id = models.CharField(
        max_length=200, blank=True, help_text="The _umsClientId: a phone number, an Apple conversation id, an address."
    )
    first_name = models.CharField(max_length=200, blank=True)
    last_name = models.CharField(max_length=200, blank=True)
    email = models.CharField(max_length=254, blank=True)
    nickname = models.CharField(
        "profile nickname", max_length=200, blank=True, help_text="_msg_ProfileNickname, as the messaging app shows it."
    )
    attributes = models.JSONField(default=dict, blank=True, help_text="Other contact attributes, e.g. MyFC_BillAmount.")
    country = models.CharField(
        max_length=2, blank=True, editable=False,
        help_text="ISO 3166 region of the phone number (US, NL), kept with the number; empty without one.",
    )
    last_message_at = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text="When the customer last wrote, to the hour: moved only when it moves by more than an hour "
        "(LAST_MESSAGE_STEP), so that a conversation writes it once, not once a message.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        permissions = (("erase_contact", "Can erase a contact and their personal data (the right to erasure)"),)
        indexes = [
            # Segments (services/segments.py): by country and by the time of the last message, within a tenant.
            # Their attributes are searched through a GIN index made in migration 0027 (PostgreSQL only).
            models.Index(fields=["tenant", "country"], name="contact_country"),
            models.Index(fields=["tenant", "last_message_at"], name="contact_last_message"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "phone_number"], condition=~Q(phone_number=""), name="contact_unique_phone"
            ),
            models.UniqueConstraint(
                fields=["tenant", "client_id"],
                condition=Q(phone_number="") & ~Q(client_id=""),
                name="contact_unique_client_id",
            ),
        ]

    def __str__(self):
        name = f"{self.first_name} {self.last_name}".strip() or self.nickname
        identity = self.phone_number or self.client_id
        return f"{name} ({identity})" if name else identity

    def save(self, *args, **kwargs):
        # Contacts made in bulk set it themselves (services/contacts.py); this covers the admin and the API.
        from channels_app.send_windows import country_of_phone

        country = country_of_phone(self.phone_number)
        if country != self.country:
            self.country = country
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "country"}
        super().save(*args, **kwargs)

    def field_code_values(self) -> dict:
        """The Contact object of field codes (standard properties, then custom attributes)."""
        values = {
            "Id": str(self.pk) if self.pk else "",
            "FirstName": self.first_name,
            "LastName": self.last_name,
            "PrimaryPhoneNumber": self.phone_number,
            "PrimaryEmailAddress": self.email,
            "_msg_ProfileNickname": self.nickname,
        }
        values.update(self.attributes)
        return {key: value for key, value in values.items() if value not in ("", None)}


class InteractionType(models.TextChoices):
    INBOUND = "Inbound"
    OUTBOUND = "Outbound"


class InteractionSubtype(models.TextChoices):
    INBOUND_NEW = "InboundNew"
    OUTBOUND_NEW = "OutboundNew"


class InteractionState(models.TextChoices):
    QUEUED = "queued"
    ACTIVE = "active"
    ENDED = "ended"


# Named rather than "not ended" in the agents' load counts: interaction_assigned (assigned_to, state) then reads an
# agent's open interactions alone, not every conversation they ever ended.
OPEN_INTERACTION_STATES = (InteractionState.QUEUED, InteractionState.ACTIVE)

class Interaction(models.Model):
    """A chat session on a channel with a contact, placed in a queue."""

    id = models.CharField(primary_key=True, max_length=32, default=generate_interaction_id, editable=False)
    # db_index=False: interaction_open_by_client starts with the channel.
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="interactions", db_index=False)
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="interactions")
    client_id = models.CharField(max_length=200, help_text="The customer's id on the channel (_umsClientId).")
    type = models.CharField(max_length=16, choices=InteractionType.choices)
    subtype = models.CharField(max_length=16, choices=InteractionSubtype.choices)
    state = models.CharField(max_length=8, choices=InteractionState.choices, default=InteractionState.QUEUED)
    queue = models.CharField(
        "chat queue key", max_length=200, help_text="tenant-id:endpoint-name, e.g. 1:session-chat."
    )
    user_data = models.JSONField(default=dict, blank=True, help_text="Attached data, with the hub driver attributes.")
    terminate_after_send = models.BooleanField(
        default=False, help_text="TerminateSessionFlag: end the session once the message is handed to the channel."
    )
    last_customer_message_at = models.DateTimeField(
        null=True, blank=True, help_text="Start of the WhatsApp 24-hour window."
    )
    # In no index: every customer message and most agent messages move it, and an update that changes no indexed
    # column is HOT (a new version on the same page, no index entry). The idle sweep reads the open interactions
    # through interaction_open_by_contact and compares it on their rows (services/interactions.py, sessions_expire).
    last_activity_at = models.DateTimeField(default=timezone.now, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=200, blank=True)
    disposition = models.CharField(
        max_length=128, blank=True,
        help_text="The Disposition Code the agent set when ending the session (a value of the business attribute).",
    )
    # db_index=False here and on routing_queue: their partial indexes below (interaction_assigned,
    # interaction_waiting) serve every lookup by them, and a full index would hold a NULL for every interaction of
    # an external queue, written on the customer-message path for nothing.
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, db_index=False,
        related_name="assigned_interactions",
        help_text="The agent who accepted it (queues routed by the server: API.md, \"Routing to agents\").",
    )
    routing_queue = models.ForeignKey(
        "channels_app.Queue", on_delete=models.SET_NULL, null=True, blank=True, related_name="waiting",
        db_index=False,
        help_text="The queue routed by the server it waits in for an agent (none once accepted).",
    )
    queued_at = models.DateTimeField(
        null=True, blank=True, help_text="When it entered the queue it waits in (first come, first served)."
    )
    session_options = models.JSONField(
        default=dict, blank=True, editable=False,
        help_text="The values of the options read per session (those whose change takes effect at the next "
        "interaction or session), as they were when the session was created.",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["channel", "client_id", "state"], name="interaction_open_by_client"),
            # A customer message's open interaction (services/interactions.py, CUSTOMER_MESSAGE_TO_OPEN_INTERACTION_SQL
            # and _customer_message_store): the customer's open conversation read alone, not each of the ended
            # ones through the contact's index (each on its own heap page, months apart). The idle sweep reads all
            # the open ones through it too (sessions_expire). None of its columns moves with a message.
            models.Index(fields=["contact", "channel", "-created_at"], name="interaction_open_by_contact",
                         condition=~Q(state=InteractionState.ENDED)),
            models.Index(fields=["routing_queue", "queued_at"], name="interaction_waiting",
                         condition=Q(routing_queue__isnull=False)),
            models.Index(fields=["assigned_to", "state"], name="interaction_assigned",
                         condition=Q(assigned_to__isnull=False)),
            # The retention purge's ended conversations, by when they ended (channels_app/services/lifecycle.py).
            models.Index(fields=["ended_at"], condition=Q(state="ended"), name="interaction_ended"),
        ]

    def __str__(self):
        return f"{self.id} ({self.type}, {self.state})"


class MessageDirection(models.TextChoices):
    INBOUND = "inbound", "from the customer"
    OUTBOUND = "outbound", "to the customer"


class MessageStatus(models.TextChoices):
    RECEIVED = "received"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"  # WhatsApp Cloud API: read by the customer, after delivered
    FAILED = "failed"
    REMOVED = "removed"


class Message(models.Model):
    """One message of an interaction, in either direction."""

    id = models.CharField(primary_key=True, max_length=32, default=generate_message_id, editable=False)
    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="messages")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="messages")
    direction = models.CharField(max_length=8, choices=MessageDirection.choices)
    text = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True, help_text="The content as the channel carries it.")
    status = models.CharField(max_length=16, choices=MessageStatus.choices)
    reasons = models.JSONField(default=list, blank=True, help_text='Receipt reasons: [{"code": 350, "message": ...}].')
    external_id = models.CharField(  # indexed in message_external_id: only the messages that have one
        max_length=200, blank=True, help_text="The third party's id (its webhook answer's messageId)."
    )
    channel_message_id = models.CharField(
        max_length=200, blank=True, help_text="channel.messageId of an inbound message (duplicates are refused)."
    )
    trace_id = models.CharField(max_length=200, blank=True, help_text="X-B3-TraceId.")
    origin_time = models.DateTimeField(null=True, blank=True, help_text="When the customer sent it (channel.time).")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="message_status_age"),
            # The reports' fold reads what changed since it last looked (services/rollups.py).
            models.Index(fields=["updated_at"], name="message_changed"),
            # Receipts find their message by the third party's id; customer messages have none (an empty string
            # each, which a full index would write on every customer message).
            models.Index(fields=["external_id"], name="message_external_id", condition=~Q(external_id="")),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "channel_message_id"],
                condition=~Q(channel_message_id=""),
                name="message_unique_channel_message_id",
            ),
        ]

    def __str__(self):
        return f"{self.direction} {self.id} ({self.status})"


class EarlyReceipt(models.Model):
    """A receipt that arrived before the webhook answer that names its message:
    kept, and applied as soon as the message's external id is stored."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="early_receipts")
    external_id = models.CharField(max_length=200)
    status = models.CharField(max_length=16)
    reasons = models.JSONField(default=list, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "external_id", "status"], name="early_receipt_unique"),
        ]

    def __str__(self):
        return f"{self.status} for {self.external_id}"
