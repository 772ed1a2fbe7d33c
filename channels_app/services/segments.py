"""Segments (API.md, "Audiences, send windows and variants"; issue 27): contacts of a tenant chosen by their
attributes, the channels they wrote on, the country of their phone number and the time of their last message;
a preview (how many, and a few of them); and a campaign's audience taken from one when the campaign starts.

Built for a million contacts: every part of a filter is one indexed condition on the contacts table
(`attributes @> {...}` on a GIN index, `(tenant, country)`, `(tenant, last_message_at)`, and an EXISTS on the
interactions by their contact), the preview counts in the database, and a campaign's audience is written by
one INSERT ... SELECT: no contact passes through Python.

* `attributes`: `{"tier": "gold"}` is equality (values compared as text: contacts keep their attributes as
  text); a value may instead be an object of one operator: `{"eq": "gold"}`, `{"ne": "gold"}` (a different
  value, or none), `{"in": ["gold", "silver"]}`, `{"exists": true}`. Any other operator is refused naming it.
* `channels`: channel ids of the segment's tenant: contacts with an interaction on one of them.
* `countries`: ISO 3166 codes ("US", "NL") of the contacts' phone numbers (Contact.country).
* `last_message_after` / `last_message_before`: ISO 8601 (a time without a zone is UTC): the contact's last
  customer message, kept to the hour (services/contacts.py, LAST_MESSAGE_STEP), is at or after / before it.
"""

from datetime import UTC, datetime, time

import phonenumbers
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from psycopg.errors import UniqueViolation

from channels_app.errors import InvalidFields, InvalidParameter
from channels_app.models import (
    Campaign,
    CampaignCounter,
    CampaignRecipient,
    Channel,
    Contact,
    Interaction,
    Segment,
    Tenant,
)
from channels_app.send_windows import PHONE_PREFIX_DIGITS
from channels_app.services.recipients import recipient_next_row
from channels_app.services.send_windows import (
    ZONE_ATTRIBUTE,
    send_window_prefix_openings,
    send_window_shared_opening,
)
from channels_app.text_rules import text_rule_broken_at, text_rule_message

FILTER_KEYS = ("attributes", "channels", "countries", "last_message_after", "last_message_before")
OPERATORS = ("eq", "ne", "in", "exists")
SAMPLE_SIZE = 10
MAX_LIST = 1000  # values of an `in`, channels, countries
MAX_TEXT = 1000
# The fields of a contact a segment's preview shows: those its campaign's recipients carry.
SAMPLE_FIELDS = ("id", "client_id", "phone_number", "first_name", "last_name", "country", "last_message_at")


def _text(value) -> str | None:
    """An attribute value as contacts keep it (text), or None when it is no scalar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _moment(value, name: str, errors: dict) -> datetime | None:
    if value is None:
        return None
    parsed = None
    if isinstance(value, str) and len(value) <= 64:
        try:
            parsed = parse_datetime(value)
            if parsed is None and (day := parse_date(value)) is not None:
                parsed = datetime.combine(day, time())
        except ValueError:
            parsed = None
    if parsed is None:
        errors[name] = ["An ISO 8601 date and time, such as 2026-05-01T09:00:00Z."]
        return None
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)


def segment_filter_clean(*, tenant: Tenant, value, field: str = "filter") -> dict:
    """The filter as it is kept: checked whole, every fault named (`filter.attributes.tier`,
    `filter.channels`...) in one InvalidFields. Channels must be of `tenant` (another tenant's channel is
    named as unknown, as a missing one is)."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InvalidFields({field: ["An object with attributes, channels, countries, last_message_after, "
                                     "last_message_before."]})
    if found := text_rule_broken_at(value, field):
        where, broken = found
        raise InvalidFields({where: [text_rule_message(where, broken)]})
    errors: dict[str, list[str]] = {}
    cleaned: dict = {}
    for key in value:
        if key not in FILTER_KEYS:
            errors[f"{field}.{key}"[:200]] = [f"Unknown filter {str(key)[:64]!r}: one of {', '.join(FILTER_KEYS)}."]
    attributes = value.get("attributes")
    if attributes is not None:
        if not isinstance(attributes, dict):
            errors[f"{field}.attributes"] = ['An object of attribute names and values: {"tier": "gold"}.']
        else:
            cleaned["attributes"] = _attributes_clean(attributes, f"{field}.attributes", errors)
    channels = value.get("channels")
    if channels is not None:
        if not isinstance(channels, list) or not all(isinstance(item, str) for item in channels) \
                or len(channels) > MAX_LIST:
            errors[f"{field}.channels"] = [f"A list of channel ids (at most {MAX_LIST})."]
        else:
            known = set(Channel.objects.filter(tenant=tenant, channel_id__in=channels)
                        .values_list("channel_id", flat=True))
            if unknown := [item for item in channels if item not in known]:
                errors[f"{field}.channels"] = [f"Unknown channel {unknown[0][:100]!r}: not a channel of tenant "
                                               f"{tenant.pk}."]
            else:
                cleaned["channels"] = sorted(set(channels))
    countries = value.get("countries")
    if countries is not None:
        if not isinstance(countries, list) or not all(isinstance(item, str) for item in countries) \
                or len(countries) > MAX_LIST:
            errors[f"{field}.countries"] = ['A list of ISO 3166 country codes, such as ["US", "NL"].']
        elif unknown := [item for item in countries if item.upper() not in phonenumbers.SUPPORTED_REGIONS]:
            errors[f"{field}.countries"] = [f"Unknown country {unknown[0][:10]!r}: an ISO 3166 code such as US."]
        else:
            cleaned["countries"] = sorted({item.upper() for item in countries})
    after = _moment(value.get("last_message_after"), f"{field}.last_message_after", errors)
    before = _moment(value.get("last_message_before"), f"{field}.last_message_before", errors)
    if after and before and after >= before:
        errors[f"{field}.last_message_before"] = ["It must be later than last_message_after."]
    if after:
        cleaned["last_message_after"] = after.isoformat()
    if before:
        cleaned["last_message_before"] = before.isoformat()
    if errors:
        raise InvalidFields(errors)
    return cleaned


def _attributes_clean(attributes: dict, field: str, errors: dict) -> dict:
    cleaned = {}
    for name, condition in attributes.items():
        where = f"{field}.{name}"[:200]
        if not name or len(name) > 200:
            errors[where] = ["An attribute name of 1 to 200 characters."]
            continue
        if not isinstance(condition, dict):
            condition = {"eq": condition}
        if len(condition) != 1:
            errors[where] = [f"One operator per attribute: one of {', '.join(OPERATORS)}."]
            continue
        ((operator, operand),) = condition.items()
        if operator not in OPERATORS:
            errors[where] = [f"Unknown operator {str(operator)[:32]!r}: one of {', '.join(OPERATORS)}."]
        elif operator == "exists":
            if not isinstance(operand, bool):
                errors[where] = ["exists takes true or false."]
            else:
                cleaned[name] = {"exists": operand}
        elif operator == "in":
            texts = [_text(item) for item in operand] if isinstance(operand, list) else [None]
            if not texts or len(texts) > MAX_LIST or any(text is None or len(text) > MAX_TEXT for text in texts):
                errors[where] = [f"in takes a list of 1 to {MAX_LIST} texts or numbers."]
            else:
                cleaned[name] = {"in": sorted(set(texts))}
        else:
            text = _text(operand)
            if text is None or len(text) > MAX_TEXT:
                errors[where] = [f"{operator} takes a text or a number (at most {MAX_TEXT} characters)."]
            else:
                cleaned[name] = {operator: text}
    return cleaned


def segment_contacts(*, segment: Segment) -> QuerySet:
    """The segment's contacts now (a queryset: nothing is read until it is used)."""
    return _contacts_of(segment.tenant_id, segment.filter or {})


def _contacts_of(tenant_id: int, kept: dict) -> QuerySet:
    contacts = Contact.objects.filter(tenant_id=tenant_id).order_by()
    for name, condition in (kept.get("attributes") or {}).items():
        ((operator, operand),) = condition.items()
        if operator == "eq":
            contacts = contacts.filter(attributes__contains={name: operand})
        elif operator == "ne":
            contacts = contacts.exclude(attributes__contains={name: operand})
        elif operator == "in":
            either = Q()
            for item in operand:
                either |= Q(attributes__contains={name: item})
            contacts = contacts.filter(either)
        elif operand:  # exists: true
            contacts = contacts.filter(attributes__has_key=name)
        else:
            contacts = contacts.exclude(attributes__has_key=name)
    if channels := kept.get("channels"):
        channel_pks = list(Channel.objects.filter(tenant_id=tenant_id, channel_id__in=channels)
                           .values_list("pk", flat=True))
        contacts = contacts.filter(Exists(Interaction.objects.filter(contact=OuterRef("pk"),
                                                                     channel_id__in=channel_pks)))
    if countries := kept.get("countries"):
        contacts = contacts.filter(country__in=countries)
    if after := kept.get("last_message_after"):
        contacts = contacts.filter(last_message_at__gte=datetime.fromisoformat(after))
    if before := kept.get("last_message_before"):
        contacts = contacts.filter(last_message_at__lt=datetime.fromisoformat(before))
    return contacts


@transaction.atomic
def segment_save(*, segment: Segment, filter_value=None, user=None) -> Segment:
    """Create or change a segment: its filter checked (InvalidFields naming each fault), its name unique in
    its tenant (InvalidParameter naming `name`)."""
    if filter_value is not None or segment.pk is None:
        segment.filter = segment_filter_clean(tenant=segment.tenant, value=filter_value)
    if not segment.name or not segment.name.strip():
        raise InvalidParameter("A segment needs a name.", field="name")
    taken = Segment.objects.filter(tenant_id=segment.tenant_id, name=segment.name).exclude(pk=segment.pk).exists()
    if taken:
        raise InvalidParameter(f"Tenant {segment.tenant_id} has a segment named {segment.name!r} already.",
                               field="name")
    if segment.pk is None and user is not None and user.is_authenticated:
        segment.created_by = user
    segment.save()
    return segment


@transaction.atomic
def segment_delete(*, segment: Segment) -> None:
    """Delete a segment no campaign is built from (400 naming the campaigns otherwise)."""
    if used := list(Campaign.objects.filter(segment=segment).values_list("pk", flat=True)[:5]):
        raise InvalidParameter(f"Campaign(s) {', '.join(map(str, used))} are built from this segment: delete "
                               "them first.", field="segment")
    segment.delete()


def segment_preview(*, segment: Segment, sample: int = SAMPLE_SIZE) -> dict:
    """{"count", "sample"}: how many contacts the segment holds now, and the first `sample` of them (by id)."""
    contacts = segment_contacts(segment=segment)
    rows = list(contacts.order_by("pk").values(*SAMPLE_FIELDS)[:sample])
    count = len(rows) if len(rows) < sample else contacts.count()
    for row in rows:
        if row["last_message_at"] is not None:
            row["last_message_at"] = row["last_message_at"].isoformat()
    return {"count": count, "sample": rows}


# --- a campaign's audience ------------------------------------------------------------------------------------

NOT_A_PHONE = "client_id is not a phone number."
NO_CLIENT_ID = "client_id is missing."


def segment_audience_take(*, campaign: Campaign) -> int:
    """Write the contacts of the campaign's segment as its recipients, in one INSERT ... SELECT (a million
    contacts never pass through Python), in the caller's transaction; returns how many rows were written.

    Each recipient's client id is the contact's phone number (E.164), else its client id; its Contact fields
    are the contact's own, read when it is invited (`contact_fields` stays empty). On a phone channel a
    contact without a number is a refused row; opted-out contacts are refused when invited, as always. Rows
    are numbered after those already there, in the order of the contacts' ids.

    Two contacts may give the same client id (one's phone number, another's client id): the second is left out
    (the unique index of a campaign's client ids). The insert is first made without ON CONFLICT, whose check
    before every row costs a third of the insert, in a savepoint; only when it meets a repeat is it made again
    with ON CONFLICT DO NOTHING."""
    contacts = segment_contacts(segment=campaign.segment).values("id", "phone_number", "client_id", "attributes")
    inner, params = contacts.query.sql_with_params()
    phone_channel = campaign.channel.media_type in ("whatsapp", "sms")
    first = recipient_next_row(campaign_id=campaign.pk) - 1
    table = CampaignRecipient._meta.db_table
    missing_phone = f"WHEN c.phone_number = '' THEN '{NOT_A_PHONE}'" if phone_channel else ""
    refused = "c.phone_number = ''" if phone_channel else "c.phone_number = '' AND c.client_id = ''"
    # Those outside the window are written waiting, out of the index of those to send (recipient_to_send), so
    # that no batch reads them before it opens. A window in one named zone opens at the same time for all
    # (send_window_openings); in each recipient's zone, a contact with no zone attribute waits until the
    # earliest opening among the zones of its number's first digits (send_window_prefix_openings), a set-based
    # bound instead of phonenumbers run for each contact; the others are decided by the batches that claim them.
    now = timezone.now()
    shared, opening = send_window_shared_opening(campaign=campaign, now=now)
    by_prefix = send_window_prefix_openings(campaign=campaign, now=now) if connection.vendor == "postgresql" else {}
    waiting, prefixes, join = [], [], ""
    if shared and opening:
        waits = f"CASE WHEN {refused} THEN NULL ELSE %s END"
        waiting = [connection.ops.adapt_datetimefield_value(opening)]
    elif by_prefix:
        zone_attribute = ("EXISTS (SELECT 1 FROM jsonb_object_keys(CASE WHEN jsonb_typeof(c.attributes) = 'object' "
                          f"THEN c.attributes ELSE '{{}}' END) AS k WHERE lower(k) = '{ZONE_ATTRIBUTE}')")
        waits = f"CASE WHEN {refused} OR {zone_attribute} THEN NULL ELSE w.opening END"
        join = (f"LEFT JOIN (VALUES {', '.join(['(%s, %s::timestamptz)'] * len(by_prefix))}) AS w(prefix, opening) "
                f"ON w.prefix = left(c.phone_number, {PHONE_PREFIX_DIGITS + 1})")
        prefixes = [value for pair in by_prefix.items() for value in pair]
    else:
        waits = "NULL"
    sql = (
        f"INSERT INTO {table} (campaign_id, row_number, client_id, contact_fields, custom_properties, error, "
        f"next_window_at) "
        f"SELECT %s, %s + ROW_NUMBER() OVER (ORDER BY c.id), "
        f"CASE WHEN c.phone_number <> '' THEN c.phone_number ELSE c.client_id END, '{{}}', '{{}}', "
        f"CASE WHEN c.phone_number = '' AND c.client_id = '' THEN '{NO_CLIENT_ID}' {missing_phone} ELSE '' END, "
        f"{waits} "
        f"FROM ({inner}) AS c {join}"
    )
    values = [campaign.pk, first, *waiting, *params, *prefixes]
    skip_repeats = " ON CONFLICT (campaign_id, client_id) WHERE error = '' DO NOTHING"
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":  # the embedded mode: small audiences, one statement
            cursor.execute(sql + skip_repeats, values)
        else:
            try:
                with transaction.atomic():
                    cursor.execute(sql, values)
            except IntegrityError as error:
                repeated = error.__cause__
                if not isinstance(repeated, UniqueViolation) or \
                        repeated.diag.constraint_name != "recipient_unique_client_per_campaign":
                    raise
                cursor.execute(sql + skip_repeats, values)
        written = cursor.rowcount
    # Kept by the database's triggers (CampaignCounter): no count of the rows here.
    refused = CampaignCounter.objects.filter(campaign=campaign).aggregate(refused=Sum("refused"))["refused"] or 0
    kept = {"state": "done", "file": "", "segment": campaign.segment_id, "accepted": written - refused,
            "rejected": [], "rejected_total": refused, "duplicates": [], "duplicate_rows": [], "duplicates_total": 0,
            "rows_read": written, "at": timezone.now().isoformat()}
    Campaign.objects.filter(pk=campaign.pk).update(upload_report=kept)
    campaign.upload_report = kept
    return written
