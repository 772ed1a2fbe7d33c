"""Outbound notification campaigns and their recipients."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from channels_app.models.configuration import Channel
from channels_app.models.conversations import Message
from channels_app.models.standard_responses import StandardResponse


class CampaignState(models.TextChoices):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Campaign(models.Model):
    """A standard response sent to many customers, each the way InviteToChat sends one."""

    name = models.CharField(max_length=200)
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="campaigns")
    standard_response = models.ForeignKey(StandardResponse, on_delete=models.PROTECT, related_name="campaigns")
    chat_queue_key = models.CharField(
        max_length=200,
        blank=True,
        help_text="ChatQueueKey of the interactions; empty: the channel's inbound-route-by-call.",
    )
    terminate_sessions = models.BooleanField(
        default=True, help_text="TerminateSessionFlag: end each session once its message is handed to the channel."
    )
    rate_per_second = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(100_000)],
        help_text="Messages per second on the channel, across all workers; empty: no limit.",
    )
    start_at = models.DateTimeField(null=True, blank=True, help_text="Empty: as soon as it is started.")
    state = models.CharField(max_length=16, choices=CampaignState.choices, default=CampaignState.DRAFT)
    throttle_next_slot = models.DateTimeField(null=True, blank=True, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False, help_text="Last batch started.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    segment = models.ForeignKey(
        "channels_app.Segment", on_delete=models.PROTECT, null=True, blank=True, related_name="campaigns",
        help_text="Instead of an uploaded audience: the segment's contacts, taken when the campaign starts.",
    )
    send_window = models.JSONField(
        null=True, blank=True,
        help_text='{"from": "09:00", "to": "20:00", "days": ["mon", ...], "timezone": "recipient" or an IANA name}: '
        "each recipient is sent to only inside it, in its zone; empty: at any time.",
    )
    upload_report = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="The report of the last audience upload: file, time, accepted, duplicate and rejected rows.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = (("view_reports", "Reports - Can view"),)

    def __str__(self):
        return f"{self.name} ({self.state})"

    def clean(self):
        if self.channel_id and self.standard_response_id and (
            self.standard_response.tenant_id != self.channel.tenant_id
        ):
            raise ValidationError({"standard_response": "The standard response is not of the channel's tenant."})


class CampaignRecipient(models.Model):
    """One row of a campaign's audience. Its status follows its message (and so the receipts); a row refused
    at upload (bad phone number, missing field values, a client id already listed) or whose invitation
    failed has no message, and its reason in `error` (status `refused`)."""

    # db_index=False: the unique (campaign, client_id) and recipient_to_send indexes start with the campaign.
    # db_constraint=False: PostgreSQL's foreign key checks every row inserted (a million checks of one campaign
    # for an audience of a million); the triggers of migration 0031 check each campaign once a statement instead,
    # and refuse a campaign deleted while it still has recipients, as the foreign key did.
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="recipients", db_index=False,
                                 db_constraint=False)
    row_number = models.PositiveIntegerField(help_text="Row of the uploaded audience (1 = first recipient).")
    client_id = models.CharField(max_length=200)
    contact_fields = models.JSONField(default=dict, blank=True)
    custom_properties = models.JSONField(default=dict, blank=True)
    # One recipient a message (recipient_unique_message), among those that have one: a recipient waiting to be
    # sent has no entry in that index, so an audience of a million adds no million NULLs to it.
    # db_constraint=False: checked once a statement too (migration 0033), not by a trigger call a row inserted.
    message = models.ForeignKey(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="campaign_recipient", db_index=False,
        db_constraint=False,
    )
    error = models.CharField(max_length=500, blank=True, help_text="Why the row was refused: no message for it.")
    claimed_until = models.DateTimeField(null=True, blank=True)
    # The campaign report (services/campaign_reports.py): written once, when the campaign reaches the row.
    variant = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Position of the campaign's variant sent to it (none without variants).")
    reached_at = models.DateTimeField(
        null=True, blank=True, help_text="When the campaign reached it: its message made, or the row refused.")
    replied_at = models.DateTimeField(
        null=True, blank=True, help_text="The customer's first message within 72 hours of the campaign's.")
    opted_out_at = models.DateTimeField(
        null=True, blank=True, help_text="When the customer opted out of the channel within 72 hours of the message.")
    next_window_at = models.DateTimeField(
        null=True, blank=True,
        help_text="Outside the campaign's send window in its zone: pending until then (empty: not yet looked at, "
        "or no window).",
    )

    class Meta:
        ordering = ["campaign", "row_number"]
        constraints = [
            # Refused rows are kept too (a client id may be listed twice, or be empty); the ones to send are unique.
            models.UniqueConstraint(
                fields=["campaign", "client_id"], condition=Q(error=""), name="recipient_unique_client_per_campaign"
            ),
            # Also the index of every look-up by message (`message_id = ...`, `IN (...)`, the join of the message
            # triggers): each implies the message is not NULL, so PostgreSQL uses this partial index for it.
            models.UniqueConstraint(fields=["message"], condition=Q(message__isnull=False),
                                    name="recipient_unique_message"),
        ]
        indexes = [
            # The next batch, in row order, without sorting every recipient still to send. Recipients waiting for
            # their send window leave it (next_window_at is set), so they never slow the batches down...
            models.Index(
                fields=["campaign", "row_number"], condition=Q(message__isnull=True, error="", next_window_at=None),
                name="recipient_to_send",
            ),
            # ...and come back through this one once their window opens (services/send_windows.py).
            models.Index(
                fields=["campaign", "next_window_at"],
                condition=Q(message__isnull=True, error="", next_window_at__isnull=False), name="recipient_waiting",
            ),
        ]

    def __str__(self):
        return f"{self.client_id} of campaign {self.campaign_id}"

    @property
    def status(self) -> str:
        if self.error:
            return "refused"
        if self.message is None:
            return "pending"
        return RECIPIENT_STATUS_BY_MESSAGE.get(self.message.status, "pending")


# A recipient's status is its message's (API.md "Campaign outcomes": refused, pending, sent, delivered, failed);
# every one but pending is final: `queued` is a message still being delivered or waiting for its next attempt.
RECIPIENT_STATUS_BY_MESSAGE = {
    "queued": "pending",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "failed": "failed",
    "removed": "failed",
}


# How many counter rows each campaign's counts are spread over: receipts of one campaign, arriving side by
# side, update different rows instead of queueing for one.
COUNTER_SHARDS = 8


class CampaignCounter(models.Model):
    """A share of a campaign's counts, kept exact by the database itself:
    triggers on recipients and messages (migration 0018) add every change in
    the statement that makes it, so the counts are read in constant time
    however large the campaign (`campaign_counts` sums the shards)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="counters")
    shard = models.PositiveSmallIntegerField()
    total = models.BigIntegerField(default=0)
    refused = models.BigIntegerField(default=0)
    sent = models.BigIntegerField(default=0)
    delivered = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "shard"], name="campaign_counter_shard")]

    def __str__(self):
        return f"counts of campaign {self.campaign_id} ({self.shard})"


VARIANTS_MIN, VARIANTS_MAX = 2, 5


class CampaignVariant(models.Model):
    """One of the two to five standard responses a campaign splits its audience between (API.md "Audiences,
    send windows and variants"): each recipient gets the variant its hash falls in (services/variants.py),
    `share` percent of the audience."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="variants")
    position = models.PositiveSmallIntegerField(validators=[MaxValueValidator(VARIANTS_MAX - 1)],
                                                help_text="0 for the first variant, up to 4.")
    standard_response = models.ForeignKey(StandardResponse, on_delete=models.PROTECT,
                                          related_name="campaign_variants")
    share = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(99)],
        help_text="Percent of the audience (the shares of a campaign add up to 100).")

    class Meta:
        ordering = ["campaign", "position"]
        constraints = [models.UniqueConstraint(fields=["campaign", "position"], name="campaign_variant_position")]

    def __str__(self):
        return f"variant {self.label}"

    @property
    def label(self) -> str:
        return "ABCDE"[self.position]


NO_VARIANT = -1  # the variant of report rows of recipients without one (no variants, or refused at upload)


class CampaignReportCount(models.Model):
    """The campaign report's figures for the recipients a campaign reached in one hour, of one variant: kept
    by services/campaign_reports.py (`campaign_reports_fold`, periodic), never by the requests that make the
    messages. `reason` empty: the figures; otherwise `failed` counts the failed messages of that reason."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="report_counts", db_index=False)
    variant = models.SmallIntegerField(default=NO_VARIANT)
    hour = models.DateTimeField(help_text="The hour (UTC) the campaign reached the recipients.")
    reason = models.CharField(max_length=200, blank=True, default="")
    total = models.BigIntegerField(default=0)
    refused = models.BigIntegerField(default=0)
    sent = models.BigIntegerField(default=0)
    delivered = models.BigIntegerField(default=0)
    read = models.BigIntegerField(default=0)
    replied = models.BigIntegerField(default=0)
    opted_out = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "hour", "variant", "reason"],
                                               name="campaign_report_count_unique")]

    def __str__(self):
        return f"report of campaign {self.campaign_id} at {self.hour} ({self.variant})"


class CampaignReportDelta(models.Model):
    """A change to the figures of CampaignReportCount, appended as it happens (a message's status changed by a
    receipt or a delivery: the trigger of migration 0027; a recipient reached: the campaign batch) and folded
    into the counts by `campaign_reports_fold`, which deletes it. Only ever inserted by the hot paths: no row
    of it is updated by two requests, so none waits for another."""

    campaign_id = models.BigIntegerField()  # no foreign key: an insert checks nothing; the fold skips the gone
    variant = models.SmallIntegerField(default=NO_VARIANT)
    hour = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True, default="")
    total = models.IntegerField(default=0)
    refused = models.IntegerField(default=0)
    sent = models.IntegerField(default=0)
    delivered = models.IntegerField(default=0)
    read = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)

    def __str__(self):
        return f"report change of campaign {self.campaign_id}"


class CampaignReportFold(models.Model):
    """The one row that says how far `campaign_reports_fold` has read customer messages and opt-outs (it is
    locked while a fold runs, so two never run side by side)."""

    inbound_until = models.DateTimeField(null=True, blank=True)
    opt_out_after_id = models.BigIntegerField(default=0)
    folded_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"campaign report fold ({self.folded_at})"
