"""The data lifecycle's doors (API.md, "Data lifecycle"): a tenant's retention
fields (read and written through `PATCH /api/tenants/{id}/`), a contact's
erasure and export."""

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_app.api.schema import ErrorSerializer
from channels_app.models import Contact
from channels_app.selectors import visible_get
from channels_app.services.access import contact_export
from channels_app.services.erasure import contact_erase
from channels_app.services.lifecycle import RETENTION_CLASSES, retention_days_clean

RETENTION_SCHEMA = {
    "type": "object",
    "properties": {name: {"type": "integer", "minimum": 0, "maximum": 36500, "nullable": True}
                   for name in RETENTION_CLASSES},
    "additionalProperties": False,
    "example": {"conversations": 365, "deliveries": 90, "campaigns": 180, "audit": 730},
}
LAST_PURGE_SCHEMA = {
    "type": "object",
    "nullable": True,
    "properties": {"at": {"type": "string", "format": "date-time"},
                   "removed": {"type": "object", "additionalProperties": {"type": "integer"}}},
}


@extend_schema_field(RETENTION_SCHEMA)
class RetentionDaysField(serializers.Field):
    """Days each class is kept: conversations, deliveries, campaigns, audit; null: for ever. A PATCH changes
    the classes it names."""

    def to_representation(self, value):
        return {name: (value or {}).get(name) for name in RETENTION_CLASSES}

    def to_internal_value(self, data):
        return retention_days_clean(data)  # 400 naming retention_days.<class>


@extend_schema_field(LAST_PURGE_SCHEMA)
class LastPurgeField(serializers.ReadOnlyField):
    """When the last purge ran and what it removed (null: never)."""



class ErasedSerializer(serializers.Serializer):
    erased = serializers.DictField(child=serializers.IntegerField(), help_text=(
        "What was removed or stripped, by kind: interactions, messages, files, deliveries, delivery_attempts, "
        "campaign_rows, opt_outs, webhooks, audit_entries, contacts."))


class ContactEraseView(APIView):
    """The right to erasure: the contact and everything that holds their personal data are removed (or,
    where a count must stay, stripped of every personal field), in one transaction. Needs
    `channels_app.erase_contact`."""

    rights_name = "contact-erase"

    @extend_schema(tags=["contacts"], summary="Erase a contact (the right to erasure)", request=None,
                   responses={200: ErasedSerializer, 404: ErrorSerializer})
    def post(self, request, pk: int):
        contact = visible_get(Contact.objects.all(), user=request.user, what="contact", pk=pk)
        return Response({"erased": contact_erase(contact=contact)})


class ContactExportView(APIView):
    """The right of access: a zip with `contact.json` (the contact, its interactions with their messages,
    its campaign rows and opt-outs; indented, ISO dates) and the contact's files under `files/`. Needs
    `view_contact`."""

    rights_name = "contact-export"

    @extend_schema(tags=["contacts"], summary="Export a contact's data (the right of access)",
                   responses={(200, "application/zip"): OpenApiTypes.BINARY, 404: ErrorSerializer})
    def get(self, request, pk: int):
        contact = visible_get(Contact.objects.all(), user=request.user, what="contact", pk=pk)
        return FileResponse(contact_export(contact=contact), as_attachment=True,
                            filename=f"contact-{contact.pk}.zip", content_type="application/zip")
