"""The data lifecycle's doors (API.md, "Data lifecycle"): a tenant's retention
fields (read and written through `PATCH /api/tenants/{id}/`)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

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

