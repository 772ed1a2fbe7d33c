"""Contacts: identification (find or create) and the WhatsApp contacts check."""

import hashlib
from datetime import timedelta

from django.core.cache import cache
from django.db import IntegrityError, transaction

from channels_app.models import Channel, Contact
from channels_app.phones import normalize_client_phone, normalize_for_business

# "the results of the call are cached ... for 7 days" (WhatsApp guide, "Sending outbound messages").
CONTACT_CHECK_CACHE_SECONDS = int(timedelta(days=7).total_seconds())

# Contact properties of field codes that map to model fields; the rest are attributes.
STANDARD_PROPERTIES = {
    "FirstName": "first_name",
    "LastName": "last_name",
    "PrimaryEmailAddress": "email",
    "EmailAddress": "email",
    "_msg_ProfileNickname": "nickname",
}
NOT_STORED = {"Id", "FullName", "PrimaryPhoneNumber", "PhoneNumber"}


def contact_identify(
    *, channel: Channel, client_id: str, phone_number: str = "", properties: dict | None = None
) -> Contact:
    """Find or create the contact of a customer (Contact Identification): by
    phone number in E.164 when there is one, else by the channel's client id;
    names, nickname and custom attributes given are kept on the contact."""
    phone = normalize_client_phone(phone_number, channel.business_id) if phone_number else None
    if phone is None and channel.media_type in ("whatsapp", "sms"):
        phone = normalize_client_phone(client_id, channel.business_id)
    lookup = {"phone_number": phone} if phone else {"phone_number": "", "client_id": client_id}
    defaults = {"client_id": client_id} if phone else {}
    for _ in range(2):  # a concurrent request may create the same contact first
        try:
            with transaction.atomic():
                contact, _created = Contact.objects.select_for_update().get_or_create(**lookup, defaults=defaults)
                _apply_properties(contact, properties or {})
                return contact
        except IntegrityError:
            continue
    return Contact.objects.get(**lookup)


def _apply_properties(contact: Contact, properties: dict) -> None:
    changed = False
    for key, value in properties.items():
        if not isinstance(value, (str, int, float)) or key in NOT_STORED:
            continue
        value = str(value)
        field = STANDARD_PROPERTIES.get(key)
        if field:
            if getattr(contact, field) != value:
                setattr(contact, field, value)
                changed = True
        elif contact.attributes.get(key) != value:
            contact.attributes[key] = value
            changed = True
    if changed:
        contact.save()


def contact_validate_phone(*, channel: Channel, raw_id: str) -> str:
    """`Messaging.ValidateContact`: the normalized E.164 number, or "" when it
    is not valid; results are cached per channel for seven days."""
    # Hashed: the raw id may hold spaces and brackets that some cache backends refuse in keys.
    digest = hashlib.sha256(raw_id.encode()).hexdigest()
    key = f"validate-contact:{channel.pk}:{channel.business_id}:{digest}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    normalized, valid = normalize_for_business(raw_id, channel.business_id)
    result = normalized if valid else ""
    cache.set(key, result, CONTACT_CHECK_CACHE_SECONDS)
    return result
