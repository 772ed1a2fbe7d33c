"""Webhook deliveries: the transactional outbox of outgoing messages.

One delivery row per outgoing message, written in the same transaction as the
message, and one row per attempt. The database, not the broker, is the truth:
the retry schedule is `next_attempt_at`, and a worker owns a delivery only
while its lease (`lease_until`) runs."""

from django.db import models

from channels_app.models.configuration import Channel
from channels_app.models.conversations import Message


class DeliveryState(models.TextChoices):
    PENDING = "pending"  # waiting for its next attempt (or in flight under a lease)
    DELIVERED = "delivered"  # the third party accepted it (2xx)
    FAILED = "failed"  # 4xx, or out of attempts / retry timeout
    WAITING = "waiting"  # an attachment after its message: pending once the delivery `after` is delivered


class Delivery(models.Model):
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="delivery")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="deliveries")
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(help_text="When the next attempt is due.")
    first_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Start of the retry timeout.")
    lease_until = models.DateTimeField(null=True, blank=True, help_text="A worker owns the delivery until then.")
    lease_token = models.CharField(max_length=32, blank=True)
    published_at = models.DateTimeField(
        null=True, blank=True, help_text="When a task for it was last handed to the broker (for the relay)."
    )
    last_error = models.CharField(max_length=500, blank=True)
    # The spec's order: text first, then each attachment, the next not sent before the one before is accepted.
    after = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="followers",
        help_text="The delivery that must be delivered before this one is sent.",
    )
    has_followers = models.BooleanField(default=False, help_text="Deliveries wait for this one.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="delivery_due")]

    def __str__(self):
        return f"delivery of {self.message_id} ({self.state}, {self.attempts} attempt(s))"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    outcome = models.CharField(max_length=16)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(default=0)
    error = models.CharField(max_length=500, blank=True)
    response_excerpt = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self):
        return f"attempt {self.number} of delivery {self.delivery_id}: {self.outcome}"
