"""Field validators used by the models (and so by the admin, the API and the services)."""

import re

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from channels_app.options_catalog import QUEUE_KEY_PATTERN

CHANNEL_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")

validate_http_url = URLValidator(schemes=["http", "https"], message="Enter an http:// or https:// URL.")


def validate_channel_id(value: str) -> None:
    if not CHANNEL_ID_PATTERN.match(value or ""):
        raise ValidationError(
            "A channel id is 1 to 100 letters, digits and . _ @ + - (for example channel-whatsapp-REAL, "
            "0123456789 or company.com)."
        )


def validate_queue_key_format(value: str) -> None:
    """The form of a chat queue key, `<tenant id>:<Chat Server endpoint name>` (no database)."""
    if not QUEUE_KEY_PATTERN.match(value or ""):
        raise ValidationError(
            f"{value!r} is not a chat queue key: use <tenant-id>:<endpoint name>, for example 1:session-chat."
        )


def validate_queue_key(value: str, *, tenant_id: int | None = None) -> None:
    """A chat queue key is `<tenant id>:<Chat Server endpoint name>`; with
    `tenant_id` (its channel's tenant) it must be of that tenant (API.md: a
    queue key's tenant is its channel's). Pure: that a tenant exists is the
    services' business."""
    validate_queue_key_format(value)
    key_tenant = int(QUEUE_KEY_PATTERN.match(value)["tenant"])
    if tenant_id is not None and key_tenant != tenant_id:
        raise ValidationError(f"Queue key {value!r} is not of the channel's tenant ({tenant_id}).")


def validate_time_zone(value: str) -> None:
    """An IANA time zone name the server knows (Europe/Amsterdam, UTC)."""
    from channels_app.send_windows import is_time_zone

    if not is_time_zone(value):
        raise ValidationError(f"{value!r} is not a known IANA time zone name (such as Europe/Amsterdam or UTC).")
