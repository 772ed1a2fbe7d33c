"""Files customers send: each attachment of an inbound message, fetched in the background."""

from django.db import models

from channels_app.models.conversations import Message


class MessageAttachmentStatus(models.TextChoices):
    PENDING = "pending"  # waiting to be fetched (or between attempts)
    STORED = "stored"  # fetched, checked and stored
    FAILED = "failed"  # refused or out of attempts; `reason` says why (an admin action fetches it again)


class MessageAttachment(models.Model):
    """A file a customer's message refers to (`attachments` of a /nexus Text message): fetched from
    `source_url` through the outbound address rules, checked by content against the spec's list and
    stored, or failed with the reason. The message itself is kept either way."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    position = models.PositiveSmallIntegerField(default=0, help_text="Its place in the message's attachments.")
    source_url = models.TextField(help_text="Where the third party said the file is.")
    declared_content_type = models.CharField(max_length=200, blank=True, help_text="contentType as sent.")
    declared_size = models.PositiveBigIntegerField(null=True, blank=True, help_text="size as sent (bytes).")
    file_name = models.CharField(max_length=255, blank=True, help_text="The file name shown to the agent.")
    content_type = models.CharField(max_length=200, blank=True, help_text="The type found in the content.")
    size = models.PositiveBigIntegerField(null=True, blank=True, help_text="Bytes stored.")
    file = models.FileField(upload_to="inbound/%Y/%m/", blank=True, max_length=255)
    thumbnail = models.FileField(upload_to="thumbnails/%Y/%m/", blank=True, max_length=255)
    status = models.CharField(
        max_length=8, choices=MessageAttachmentStatus.choices, default=MessageAttachmentStatus.PENDING
    )
    reason = models.CharField(max_length=500, blank=True, help_text="Why the last attempt failed.")
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    stored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["message", "position"]
        verbose_name = "customer attachment"
        indexes = [models.Index(fields=["status", "updated_at"], name="message_attachment_status")]

    def __str__(self):
        return f"{self.file_name or self.source_url[:60]} ({self.status})"
