"""Segments: audiences of contacts chosen by a filter (API.md, "Audiences, send windows and variants")."""

from django.conf import settings
from django.db import models

from channels_app.models.configuration import Tenant


class Segment(models.Model):
    """Contacts of a tenant chosen by their attributes, the channels they wrote on, the country of their phone
    number and the time of their last message (services/segments.py reads the filter). A campaign built
    from a segment takes its contacts when it starts."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="segments")
    name = models.CharField(max_length=200)
    filter = models.JSONField(
        default=dict, blank=True,
        help_text='{"attributes": {"tier": "gold"}, "channels": ["<channel_id>"], "countries": ["US"], '
        '"last_message_after": "<ISO 8601>", "last_message_before": "<ISO 8601>"}: every part given must hold.',
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="segment_unique_name")]

    def __str__(self):
        return self.name
