"""WhatsApp Cloud API: raw webhooks kept until processed, media of customer
messages, message templates per channel, and the channel's send throttle.
Opt-outs (every channel type) live here too: they were born with it."""

from django.db import models

from channels_app.models.configuration import Channel
from channels_app.models.conversations import Contact, Message
from channels_app.models.standard_responses import StandardResponse


class WhatsAppInbox(models.Model):
    """A webhook request of Meta, stored as received (after its signature was
    checked) before it is answered, then processed by a task: nothing is lost
    if a worker dies, and processing twice stores nothing twice."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="whatsapp_inbox")
    body = models.TextField(help_text="The raw JSON body, as signed.")
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    error = models.TextField(blank=True)

    class Meta:
        verbose_name = "WhatsApp webhook"
        ordering = ["-received_at"]

    def __str__(self):
        return f"webhook {self.pk} of {self.channel_id}"


class MediaState(models.TextChoices):
    PENDING = "pending"
    STORED = "stored"
    FAILED = "failed"


class WhatsAppMedia(models.Model):
    """A file of a customer message (image, audio, video, document, sticker),
    named by Meta's media id and fetched from the Graph API by a task."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="whatsapp_media")
    media_id = models.CharField(max_length=200)
    kind = models.CharField(max_length=16)
    mime_type = models.CharField(max_length=120, blank=True)
    sha256 = models.CharField(max_length=128, blank=True)
    file_name = models.CharField(max_length=255, blank=True)
    file = models.FileField(upload_to="whatsapp/%Y/%m/", blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    state = models.CharField(max_length=8, choices=MediaState.choices, default=MediaState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        verbose_name_plural = "WhatsApp media"
        constraints = [models.UniqueConstraint(fields=["message", "media_id"], name="whatsapp_media_unique")]

    def __str__(self):
        return f"{self.kind} {self.media_id} ({self.state})"


class TemplateStatus(models.TextChoices):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    PAUSED = "PAUSED"
    DISABLED = "DISABLED"


class WhatsAppTemplate(models.Model):
    """A standard response (notification or rich media) submitted as a message
    template on a WhatsApp Cloud API channel's WABA, with Meta's verdict."""

    standard_response = models.ForeignKey(
        StandardResponse, on_delete=models.CASCADE, related_name="whatsapp_templates"
    )
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="whatsapp_templates")
    name = models.CharField(max_length=512, help_text="The template's name at Meta.")
    language = models.CharField(max_length=16)
    category = models.CharField(max_length=16, default="UTILITY", help_text="UTILITY, MARKETING or AUTHENTICATION.")
    template_id = models.CharField(max_length=64, blank=True, help_text="Meta's id of the template.")
    status = models.CharField(max_length=16, choices=TemplateStatus.choices, default=TemplateStatus.PENDING)
    reason = models.CharField(max_length=500, blank=True, help_text="Why Meta rejected, paused or disabled it.")
    submitted_at = models.DateTimeField(null=True, blank=True, help_text="When it was sent to Meta.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "WhatsApp template"
        constraints = [
            models.UniqueConstraint(fields=["standard_response", "channel"], name="whatsapp_template_unique"),
        ]

    def __str__(self):
        return f"{self.name} ({self.language}) on {self.channel.channel_id}: {self.status}"


class ChannelThrottle(models.Model):
    """The send throttle of a channel, shared by every worker: the next free
    send slot, in microseconds since the epoch (one UPDATE ... RETURNING a send)."""

    channel = models.OneToOneField(Channel, on_delete=models.CASCADE, primary_key=True, related_name="throttle")
    next_slot_us = models.BigIntegerField(default=0)

    def __str__(self):
        return f"throttle of {self.channel_id}"


class ContactOptOut(models.Model):
    """A contact who opted out of a channel (a stop keyword, an agent, the API):
    InviteToChat and campaigns do not send to them on that channel."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="opt_outs")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="opt_outs")
    source = models.CharField(max_length=64, blank=True, help_text="keyword, api or admin.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "opt-out"
        constraints = [models.UniqueConstraint(fields=["contact", "channel"], name="contact_opt_out_unique")]

    def __str__(self):
        return f"{self.contact} opted out of {self.channel}"
