"""What the reports read (API.md, "Reports"): figures folded off the hot paths
by `channels_app.services.rollups`, never a scan of the messages per request.

* `ConversationSummary`: one row per interaction, its figures as last folded
  (so a change is folded as the difference between the new figures and these).
* `ReportRollup`: per tenant, group (`queue`, `channel`, `agent`,
  `disposition`, and its key) and hour the interaction began: the sums of the
  summaries, with fixed-bucket histograms of first response, handle and
  webhook latency times (percentiles of any period are read from the summed
  buckets).
* `ChannelOutage`: each time a channel's circuit was open, written by a
  database trigger when `Channel.down_since` is set or cleared.
* `ReportWatermark`: up to when the fold has read.
"""

from django.db import models

from channels_app.models.configuration import Channel
from channels_app.models.conversations import Interaction


class ConversationSummary(models.Model):
    """An interaction's figures as the last fold saw them (services/rollups.py): what it added to its groups'
    rollups, so that the next change of the interaction adds only the difference."""

    interaction = models.OneToOneField(Interaction, on_delete=models.CASCADE, primary_key=True,
                                       related_name="report_summary")
    tenant_id = models.PositiveIntegerField()
    hour = models.DateTimeField(help_text="The hour the interaction began (UTC): where its figures count.")
    figures = models.JSONField(default=dict, help_text="Its contribution to each of its groups' rollups.")
    groups = models.JSONField(default=dict, help_text="Its group keys: queue, channel, agent, disposition.")

    def __str__(self):
        return f"figures of {self.interaction_id}"


class ReportDimension(models.TextChoices):
    QUEUE = "queue"
    CHANNEL = "channel"
    AGENT = "agent"
    DISPOSITION = "disposition"


class ReportRollup(models.Model):
    """The figures of the interactions of one group that began in one hour."""

    tenant_id = models.PositiveIntegerField()
    dimension = models.CharField(max_length=16, choices=ReportDimension.choices)
    key = models.CharField(max_length=200, blank=True, help_text="The queue key, channel pk, agent's user id or "
                           "disposition code; empty: none (no agent, no disposition).")
    hour = models.DateTimeField()
    interactions = models.BigIntegerField(default=0)
    messages_in = models.BigIntegerField(default=0)
    messages_out = models.BigIntegerField(default=0)
    ended_without_reply = models.BigIntegerField(default=0)
    delivered = models.BigIntegerField(default=0)
    read = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)
    failed_by_reason = models.JSONField(default=dict)
    first_response = models.JSONField(default=dict, help_text="Histogram: bucket index -> interactions.")
    handle = models.JSONField(default=dict, help_text="Histogram: bucket index -> interactions.")
    latency = models.JSONField(default=dict, help_text="Histogram: bucket index -> webhook attempts.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant_id", "dimension", "key", "hour"], name="report_rollup_unique"),
        ]
        indexes = [models.Index(fields=["dimension", "hour"], name="report_rollup_period")]

    def __str__(self):
        return f"{self.dimension} {self.key!r} at {self.hour:%Y-%m-%d %H}h"


class ChannelOutage(models.Model):
    """A time the channel's circuit was open (models.configuration.CIRCUIT_RULE): from `Channel.down_since` being
    set to its being cleared. Written by the database (migration 0027's trigger), never by a form."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="outages")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True, help_text="Empty: still open.")

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["channel", "started_at"], name="channel_outage_period")]

    def __str__(self):
        return f"{self.channel_id} down from {self.started_at}"


class ReportWatermark(models.Model):
    """Up to when the fold has read (one row, `name` = "reports")."""

    name = models.CharField(max_length=32, primary_key=True)
    folded_until = models.DateTimeField()
    folded_at = models.DateTimeField()

    def __str__(self):
        return f"{self.name} folded until {self.folded_until}"

