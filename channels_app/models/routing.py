"""The server's own routing (API.md, "Routing to agents"): queues routed by
the server, agents' readiness and capacity, offers, conference members and
notes. The rules live in `channels_app.services.routing`."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from channels_app.models.configuration import Tenant
from channels_app.models.conversations import Interaction
from channels_app.validators import validate_queue_key_format

USE_WORKSPACE_PERMISSION = (
    "use_workspace", "Workspace - Can use (be offered interactions of queues routed by the server, accept them, "
    "transfer, conference, notes)",
)
CAPACITY_MIN, CAPACITY_MAX = 1, 20
OFFER_TIMEOUT_MAX = 3600


class QueueRouting(models.TextChoices):
    EXTERNAL = "external", "by an outside system (Genesys)"
    WORKSPACE = "workspace", "by this server, to its agents"


class Queue(models.Model):
    """A chat queue (ChatQueueKey) of a tenant, routed by an outside system (`external`, as before) or by
    the server itself (`workspace`): then what enters it is offered to its agents."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="queues")
    key = models.CharField(
        "chat queue key", max_length=200, unique=True, validators=[validate_queue_key_format],
        help_text="tenant-id:endpoint-name, e.g. 1:session-chat (the tenant id is the queue's tenant).",
    )
    routing = models.CharField(
        max_length=16, choices=QueueRouting.choices, default=QueueRouting.EXTERNAL,
        help_text="external: an outside router takes the interactions (nothing changes for Genesys); workspace: "
        "the server offers them to the agents below.",
    )
    offer_timeout_seconds = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(OFFER_TIMEOUT_MAX)],
        help_text="An offer not answered within this many seconds goes to the next agent.",
    )
    agents = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="queues",
        help_text="Who is offered this queue's interactions (members of the tenant with Workspace - Can use).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["key"]
        permissions = (USE_WORKSPACE_PERMISSION,)

    def __str__(self):
        return self.key

    def clean(self):
        if self.key and self.tenant_id is not None:
            prefix = self.key.split(":", 1)[0]
            if prefix.isdigit() and int(prefix) != self.tenant_id:
                raise ValidationError({"key": f"Queue key {self.key!r} is not of tenant {self.tenant_id}."})


class AgentState(models.Model):
    """An agent's readiness per media, capacity and when they last took or finished work (who has been
    idle longest is offered first)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="agent_state"
    )
    ready = models.JSONField(default=dict, blank=True, help_text='Per media: {"whatsapp": true, "sms": false}.')
    capacity = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(CAPACITY_MIN), MaxValueValidator(CAPACITY_MAX)],
        help_text="How many interactions at once (1-20).",
    )
    idle_since = models.DateTimeField(
        default=timezone.now, help_text="When the agent last became ready, took an interaction or finished one."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["idle_since"], name="agent_state_idle")]

    def __str__(self):
        return f"agent {self.user_id}"


class OfferState(models.TextChoices):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


class OfferKind(models.TextChoices):
    ROUTE = "route", "from the queue"
    TRANSFER = "transfer", "a transfer"
    CONFERENCE = "conference", "a conference invite"


class Offer(models.Model):
    """An interaction offered to one agent. At most one pending offer to take an interaction (route or
    transfer) exists at a time, and one pending offer of an interaction per agent: the database refuses a
    second."""

    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="offers")
    queue = models.ForeignKey(Queue, on_delete=models.SET_NULL, null=True, blank=True, related_name="offers")
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="offers")
    kind = models.CharField(max_length=16, choices=OfferKind.choices, default=OfferKind.ROUTE)
    subtype = models.CharField(
        max_length=64, blank=True, help_text="InternalConferenceInvite for a conference (Interaction Subtype)."
    )
    from_agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="offers_sent",
        help_text="Who transferred or invited.",
    )
    state = models.CharField(max_length=16, choices=OfferState.choices, default=OfferState.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["state", "expires_at"], name="offer_due"),
            models.Index(fields=["agent", "state"], name="offer_agent_state"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["interaction"], condition=Q(state="pending") & ~Q(kind="conference"),
                name="offer_one_pending_per_interaction",
            ),
            models.UniqueConstraint(
                fields=["interaction", "agent"], condition=Q(state="pending"), name="offer_one_pending_per_agent"
            ),
        ]

    def __str__(self):
        return f"{self.kind} offer of {self.interaction_id} to {self.agent_id} ({self.state})"


class ConferenceMember(models.Model):
    """An agent who accepted a conference invite: sees and sends messages of the interaction."""

    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="conference_members")
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conferences")
    joined_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["interaction", "agent"], name="conference_member_unique"),
        ]

    def __str__(self):
        return f"{self.agent_id} in {self.interaction_id}"


class InteractionNote(models.Model):
    """A note of the interaction's history (the workspace's Note): never sent to the customer."""

    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="notes"
    )
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"note on {self.interaction_id}"


class AgentEvent(models.Model):
    """What an agent's screen must see (an offer, a message, a receipt, an assignment), written in the same
    transaction as the change it tells of and carried by the event stream (`GET /api/agents/me/events/`).
    `seq` orders the events as they became visible (set after the commit by services.agent_events'
    sequencer): a stream that resumes after the last `seq` it sent (`Last-Event-ID`) misses none and repeats
    none, even of transactions that committed in another order than they began."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_events")
    kind = models.CharField(max_length=32)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    seq = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        indexes = [
            models.Index(fields=["user", "seq"], name="agent_event_stream"),
            models.Index(fields=["id"], name="agent_event_unsequenced", condition=Q(seq__isnull=True)),
            models.Index(fields=["created_at"], name="agent_event_age"),
        ]
        constraints = [models.UniqueConstraint(fields=["seq"], name="agent_event_seq_unique")]

    def __str__(self):
        return f"{self.kind} #{self.seq} for {self.user_id}"
