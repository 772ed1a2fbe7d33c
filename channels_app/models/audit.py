"""The audit log: who changed what, when, from where (API.md, "Audit log")."""

from django.conf import settings
from django.db import models

from channels_app.models.configuration import Tenant


class AuditAction(models.TextChoices):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    STATE_CHANGE = "state_change", "state change"
    REVOKE = "revoke"
    PURGE = "purge"  # retention: what a tenant keeps no longer (channels_app/services/lifecycle.py)
    ERASE = "erase"  # the right to erasure: a contact and their personal data


class AuditEntry(models.Model):
    """One change to the configuration (or a campaign's state, or a token):
    written by the services in the same transaction as the change. Secrets
    are masked before they get here."""

    tenant = models.ForeignKey(
        Tenant,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_entries",
        help_text="The tenant of the changed object; empty for installation-wide configuration.",
    )
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit_entries"
    )
    username = models.CharField(max_length=150, blank=True, help_text="Kept when the user is deleted.")
    remote_addr = models.GenericIPAddressField("from address", null=True, blank=True)
    action = models.CharField(max_length=16, choices=AuditAction.choices)
    object_type = models.CharField(max_length=64, help_text="e.g. channel, standard-response, campaign.")
    object_id = models.CharField(max_length=200)
    object_repr = models.CharField("object", max_length=300, blank=True)
    changes = models.JSONField(
        default=dict, blank=True, help_text='Fields changed: {"field": [before, after]} (secrets masked).'
    )

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_by_object")]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action} {self.object_type} {self.object_id}"
