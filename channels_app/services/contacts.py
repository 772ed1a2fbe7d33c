"""Contacts: identification (find or create) and the WhatsApp contacts check."""

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from channels_app.bulk import bulk_insert_new, bulk_update_rows
from channels_app.models import Channel, Contact
from channels_app.phones import normalize_client_phone, normalize_for_business
from channels_app.send_windows import country_of_phone

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


@dataclass(frozen=True)
class ContactClaim:
    """Who a message or an invitation is for: the channel's client id, a phone
    number when the request names one, and properties to keep on the contact."""

    client_id: str
    phone_number: str = ""
    properties: dict = field(default_factory=dict)


def contact_identify(
    *, channel: Channel, client_id: str, phone_number: str = "", properties: dict | None = None
) -> Contact:
    """Find or create the contact of a customer (Contact Identification): by
    phone number in E.164 when there is one, else by the channel's client id;
    names, nickname and custom attributes given are kept on the contact."""
    claim = ContactClaim(client_id=client_id, phone_number=phone_number, properties=properties or {})
    return contacts_identify(channel=channel, claims=[claim])[0]


def contacts_identify(*, channel: Channel, claims: list[ContactClaim]) -> list[Contact]:
    """`contact_identify` for many customers at once, in a handful of
    statements whatever their number: the contacts of each claim, in order."""
    keys = [_contact_key(channel, claim) for claim in claims]
    found = _contacts_by_key(channel.tenant_id, set(keys))
    missing = {}
    for key, claim in zip(keys, claims, strict=True):
        if key not in found:
            if key not in missing:
                missing[key] = _new_contact(channel, key, claim.client_id)
            _apply_properties(missing[key], claim.properties)  # so that a new contact needs no update
    if missing:
        found.update(_contacts_create(channel.tenant_id, missing))
    contacts = [found[key] for key in keys]
    changed = {}
    for contact, claim in zip(contacts, claims, strict=True):
        if _apply_properties(contact, claim.properties):
            changed[contact.pk] = contact
    if changed:
        # One UPDATE joining a VALUES list: bulk_update's CASE expressions cost a campaign batch whose audience
        # brings new values for known contacts more than a millisecond a recipient (issue 25, lever 6).
        fields = ["first_name", "last_name", "email", "nickname", "attributes", "updated_at"]
        bulk_update_rows(Contact, [{"pk": contact.pk, **{name: getattr(contact, name) for name in fields}}
                                   for contact in changed.values()], fields)
    return contacts


def contact_key(*, channel: Channel, client_id: str, phone_number: str = "") -> tuple[str, str]:
    """What identifies the customer of `client_id` (and `phone_number`, when the request names one) on the channel
    (`contact_identify`'s rule): ("phone", E.164) or ("client", client id)."""
    return _contact_key(channel, ContactClaim(client_id=client_id, phone_number=phone_number))


def contact_unsaved(*, channel: Channel, key: tuple[str, str], client_id: str, properties: dict) -> Contact:
    """The contact `contacts_identify` would create for `key`, with `properties` (not saved)."""
    contact = _new_contact(channel, key, client_id)
    _apply_properties(contact, properties)
    return contact


@dataclass(frozen=True)
class ContactChanges:
    """What `_apply_properties` does to a contact that exists, for a statement that applies it without reading the
    contact first: the model fields' final values, the custom attributes given, and whether a change is certain
    whatever the stored values (one field given twice with different values: the first differs from the second)."""

    fields: dict
    attributes: dict
    certain: bool


def contact_changes(*, properties: dict) -> ContactChanges:
    fields, attributes, certain = {}, {}, False
    for key, model_field, value in _stored_properties(properties):
        if model_field:
            certain = certain or fields.get(model_field, value) != value
            fields[model_field] = value
        else:
            attributes[key] = value
    return ContactChanges(fields=fields, attributes=attributes, certain=certain)


def contact_new(*, channel: Channel, key: tuple[str, str], client_id: str, properties: dict, last_message_at) -> (
        Contact | None):
    """The contact of `key` that the caller looked for and did not find, created with `properties` and the time of
    its first message in one statement; None when a concurrent request created it first (the caller reads it
    then: it is committed, the insert waited for it)."""
    contact = _new_contact(channel, key, client_id)
    _apply_properties(contact, properties)
    contact.last_message_at = last_message_at
    created = bulk_insert_new(Contact, [contact], returning=[])
    if not created:
        return None
    contact.pk, contact._state.adding, contact._state.db = created[0][0], False, connection.alias
    return contact


def contact_properties_keep(*, contact: Contact, properties: dict) -> None:
    """Keep the names, nickname and custom attributes given on a contact the caller found (as `contact_identify`
    does): written only when one changed."""
    if _apply_properties(contact, properties):
        Contact.objects.bulk_update([contact], ["first_name", "last_name", "email", "nickname", "attributes",
                                                "updated_at"])


def _contact_key(channel: Channel, claim: ContactClaim) -> tuple[str, str]:
    """("phone", E.164) when the customer has a phone number, else ("client", client id)."""
    phone = normalize_client_phone(claim.phone_number, channel.business_id) if claim.phone_number else None
    if phone is None and channel.media_type in ("whatsapp", "sms"):
        phone = normalize_client_phone(claim.client_id, channel.business_id)
    return ("phone", phone) if phone else ("client", claim.client_id)


def _new_contact(channel: Channel, key: tuple[str, str], client_id: str) -> Contact:
    kind, value = key
    if kind == "phone":
        return Contact(tenant_id=channel.tenant_id, phone_number=value, client_id=client_id,
                       country=country_of_phone(value))
    # An e-mail customer's client id is their address: the contact's E-mail shows it (the workspace's panel).
    return Contact(tenant_id=channel.tenant_id, client_id=value,
                   email=value if channel.media_type == "email" and _is_email_address(value) else "")


def _is_email_address(value: str) -> bool:
    try:
        validate_email(value)
    except ValidationError:
        return False
    return len(value) <= Contact._meta.get_field("email").max_length


def _contacts_create(tenant_id: int, missing: dict[tuple[str, str], Contact]) -> dict[tuple[str, str], Contact]:
    """Create the missing contacts in one statement; those a concurrent request created first are read."""
    created = {}
    for pk, phone_number, client_id in bulk_insert_new(Contact, list(missing.values()),
                                                       returning=["phone_number", "client_id"]):
        key = ("phone", phone_number) if phone_number else ("client", client_id)
        contact = created[key] = missing[key]
        contact.pk, contact._state.adding, contact._state.db = pk, False, connection.alias
    if len(created) < len(missing):
        created.update(_contacts_by_key(tenant_id, set(missing) - set(created)))
    return created


def contact_key_sql(kind: str, key: str) -> str:
    """The SQL condition that finds, on the alias `contact`, the contact of a key of `kind` ("phone" or "client",
    as `contact_key` gives it) whose value is the SQL expression `key`. It states the unique index's condition word
    for word (contact_unique_phone, contact_unique_client_id): without it PostgreSQL cannot use the partial index
    and reads every contact of the tenant."""
    if kind == "phone":
        return f"contact.phone_number = {key} AND NOT contact.phone_number = ''"
    return f"contact.phone_number = '' AND contact.client_id = {key} AND NOT contact.client_id = ''"


# On PostgreSQL, a batch's contacts are found key by key through their unique index: a sub-select a key, joined
# LATERAL and kept apart by OFFSET 0, so that each is planned as one equality on a unique index. An IN list of the
# keys is planned from the table's statistics instead, and on a table not analyzed since it grew (a new
# installation, autovacuum behind a campaign that creates a million contacts) it read every contact of the tenant:
# 230 ms a batch of 200 at 1,000,000 contacts, against 0.7 ms (docs/PERFORMANCE.md, "a batch's contacts found key
# by key").
CONTACTS_BY_KEY_SQL = {kind: f"""SELECT contact.* FROM unnest(%s::text[]) AS given(key) CROSS JOIN LATERAL (
    SELECT * FROM {Contact._meta.db_table} AS contact
    WHERE contact.tenant_id = %s AND {contact_key_sql(kind, "given.key")} OFFSET 0
) AS contact""" for kind in ("phone", "client")}


def _contacts_by_key(tenant_id: int, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Contact]:
    """Contacts are per tenant: the same number in two tenants is two contacts."""
    phones = [value for kind, value in keys if kind == "phone"]
    client_ids = [value for kind, value in keys if kind == "client"]
    found = {}
    if phones:
        found.update({("phone", c.phone_number): c for c in _contacts_by_phone(tenant_id, phones)})
    if client_ids:
        found.update({("client", c.client_id): c for c in _contacts_by_client_id(tenant_id, client_ids)})
    return found


# Elsewhere than PostgreSQL, each query states its unique index's condition word for word (`NOT phone_number = ''`,
# `NOT client_id = ''`) as well: without it a partial index cannot be used.
def _contacts_by_phone(tenant_id: int, phones: list[str]):
    if connection.vendor == "postgresql":
        return Contact.objects.raw(CONTACTS_BY_KEY_SQL["phone"], [phones, tenant_id])
    return Contact.objects.filter(tenant_id=tenant_id, phone_number__in=phones).exclude(phone_number="")


def _contacts_by_client_id(tenant_id: int, client_ids: list[str]):
    if connection.vendor == "postgresql":
        return Contact.objects.raw(CONTACTS_BY_KEY_SQL["client"], [client_ids, tenant_id])
    return Contact.objects.filter(tenant_id=tenant_id, phone_number="", client_id__in=client_ids).exclude(
        client_id="")


def _stored_properties(properties: dict):
    """The given properties a contact keeps, as (key, its model field or None for a custom attribute, the value
    as text)."""
    for key, value in properties.items():
        if isinstance(value, (str, int, float)) and key not in NOT_STORED:
            yield key, STANDARD_PROPERTIES.get(key), str(value)


def _apply_properties(contact: Contact, properties: dict) -> bool:
    """Set the given properties on the contact (not saved); True when one changed."""
    changed = False
    for key, model_field, value in _stored_properties(properties):
        if model_field:
            if getattr(contact, model_field) != value:
                setattr(contact, model_field, value)
                changed = True
        elif contact.attributes.get(key) != value:
            contact.attributes[key] = value
            changed = True
    if changed:
        contact.updated_at = timezone.now()
    return changed


# A contact's last_message_at moves only when it moves by more than this: one write in a conversation, not one
# a message (the inbound path reads the contact anyway: a comparison costs nothing, a statement would).
LAST_MESSAGE_STEP = timedelta(hours=1)


def contact_last_message_moved(*, contact: Contact, at) -> None:
    """Keep the time of the customer's last message on the contact (segments filter by it), to the hour: written
    when it is more than LAST_MESSAGE_STEP later than the one kept, and never moved back (a message with an
    earlier origin time, or a concurrent one, leaves a later time in place)."""
    if contact.last_message_at is not None and at - contact.last_message_at <= LAST_MESSAGE_STEP:
        return
    Contact.objects.filter(pk=contact.pk).filter(
        Q(last_message_at__isnull=True) | Q(last_message_at__lt=at)).update(last_message_at=at)
    contact.last_message_at = at


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


# --- the workspace's contact panel (API.md "The workspace": see and edit the contact's details) -------------------
# Contact attribute names as the options of Workspace name them (the displayed attributes,
# contact.directory-*), and the model field each is; any other name is one of the contact's `attributes`.
DIRECTORY_FIELDS = {
    "FirstName": "first_name",
    "LastName": "last_name",
    "PhoneNumber": "phone_number",
    "PrimaryPhoneNumber": "phone_number",
    "EmailAddress": "email",
    "PrimaryEmailAddress": "email",
    "_msg_ProfileNickname": "nickname",
    "ClientId": "client_id",
}
EDITABLE_FIELDS = ("first_name", "last_name", "email", "nickname", "attributes")


def contact_directory_search(queryset, *, words: str, attribute_names: list[str]):
    """Contacts of `queryset` whose attributes named by `contact.directory-search-attributes` hold `words`
    (case-insensitive, each word in one of them)."""
    from django.db.models import Q

    lookups = []
    for name in attribute_names:
        name = name.strip()
        if not name:
            continue
        model_field = DIRECTORY_FIELDS.get(name)
        lookups.append(f"{model_field}__icontains" if model_field else f"attributes__{name}__icontains")
    if not lookups:
        return queryset.none()
    for word in words.split():
        condition = Q()
        for lookup in lookups:
            condition |= Q(**{lookup: word})
        queryset = queryset.filter(condition)
    return queryset


def contact_update(*, contact: Contact, changes: dict, opted_out: list[str] | None = None) -> Contact:
    """Change the contact's details (`EDITABLE_FIELDS`; `attributes` replaces the custom attributes) and,
    when given, its opt-outs, in one transaction. The caller has validated the values."""
    from django.db import transaction

    from channels_app.services.opt_out import contact_opt_outs_set

    with transaction.atomic():
        fields = [name for name in EDITABLE_FIELDS if name in changes]
        for name in fields:
            setattr(contact, name, changes[name])
        if fields:
            contact.updated_at = timezone.now()
            contact.save(update_fields=[*fields, "updated_at"])
        if opted_out is not None:
            contact_opt_outs_set(contact=contact, channel_ids=opted_out)
    return contact
