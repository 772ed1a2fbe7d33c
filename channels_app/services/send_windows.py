"""A campaign's send window at work (API.md, "Audiences, send windows and variants"; the rules of a window are
channels_app/send_windows.py): which zone each recipient is in, and holding back the recipients of a batch
that are outside their window.

A recipient's zone, for a window in "recipient" time: the `timezone` attribute of its contact (the audience
row's Contact.timezone, else the stored contact's attribute; the name compared regardless of case), else the
zone of its phone number (send_windows.zone_of_phone: the first of phonenumbers' zones for the number, which
are sorted by name), else its channel's tenant's zone (Tenant.timezone). A zone name that is not a known IANA
name is passed over for the next source.

A recipient outside its window stays pending with `next_window_at` (the next opening in its zone), released
from the batch that claimed it: it then leaves the index of the recipients to send (recipient_to_send) and
waits in recipient_waiting, which the batches read only for those whose time has come; so recipients that wait
cost the others nothing. Once running campaigns go quiet, campaigns_tick kicks them, and the first batch
after an opening takes the recipients whose time has come (they are sent within CAMPAIGN_STALLED_SECONDS plus
a tick of the opening)."""

from datetime import datetime
from typing import NamedTuple

from django.db.models import Q

from channels_app.bulk import bulk_update_rows
from channels_app.models import Campaign, CampaignRecipient, Contact
from channels_app.phones import normalize_client_phone
from channels_app.send_windows import (  # noqa: F401  (DAYS, send_window_parse, zone_names: the interfaces' way)
    DAYS,
    PHONE_PREFIX_DIGITS,
    RECIPIENT,
    SendWindow,
    is_time_zone,
    next_opening,
    send_window_from_stored,
    send_window_parse,
    zone_names,
    zones_of_phone_prefix,
)
from channels_app.send_windows import zone_of_phone as phone_zone

ZONE_ATTRIBUTE = "timezone"


def _zone_attribute(values: dict | None) -> str | None:
    for key, value in (values or {}).items():
        if isinstance(key, str) and key.casefold() == ZONE_ATTRIBUTE and is_time_zone(value):
            return value
    return None


def recipient_zones(*, campaign: Campaign, recipients) -> list[str]:
    """The zone of each recipient (in order) for the campaign's window: the window's own zone, or each
    recipient's (the contact's attribute, the phone number's, the tenant's). `recipients`: CampaignRecipient
    rows, or audience rows not yet stored (AudienceEntry): anything with a client_id and contact_fields. One
    query for their contacts."""
    window = send_window_from_stored(campaign.send_window)
    if window is not None and window.zone != RECIPIENT:
        return [window.zone] * len(recipients)
    channel = campaign.channel
    phones = [normalize_client_phone(recipient.client_id, channel.business_id) for recipient in recipients] \
        if channel.media_type in ("whatsapp", "sms") else [None] * len(recipients)
    contacts = Contact.objects.filter(tenant_id=channel.tenant_id)
    known_phones = [phone for phone in phones if phone]
    stored: dict[str, dict] = {}
    if known_phones:
        stored.update(contacts.filter(phone_number__in=known_phones).exclude(phone_number="")
                      .values_list("phone_number", "attributes"))
    client_ids = [recipient.client_id for recipient, phone in zip(recipients, phones, strict=True) if not phone]
    if client_ids:
        stored.update(contacts.filter(phone_number="", client_id__in=client_ids).exclude(client_id="")
                      .values_list("client_id", "attributes"))
    tenant_zone = channel.tenant.timezone if is_time_zone(channel.tenant.timezone) else "UTC"
    zones = []
    for recipient, phone in zip(recipients, phones, strict=True):
        zones.append(
            _zone_attribute(recipient.contact_fields)
            or _zone_attribute(stored.get(phone or recipient.client_id))
            or (phone_zone(phone) if phone else None)
            or tenant_zone
        )
    return zones


class AudienceEntry(NamedTuple):
    """An audience row being stored, as recipient_zones reads it."""

    client_id: str
    contact_fields: dict


def send_window_openings(*, campaign: Campaign, recipients, now: datetime) -> list[datetime | None]:
    """For each recipient (as recipient_zones takes them), the next opening of the campaign's window in its
    zone, or None when the window is open for it `now` (and for every recipient without a window). An opening
    stays true later on: the window is closed for that recipient from `now` until then, whenever it is read
    (as long as the window and the recipient's zone stay what they are)."""
    window: SendWindow | None = send_window_from_stored(campaign.send_window)
    if window is None or not recipients:
        return [None] * len(recipients)
    openings: dict[str, datetime | None] = {}  # per zone: an audience has few
    result = []
    for zone in recipient_zones(campaign=campaign, recipients=recipients):
        if zone not in openings:
            opening = next_opening(window, zone, now)
            openings[zone] = opening if opening > now else None
        result.append(openings[zone])
    return result


def send_window_shared_opening(*, campaign: Campaign, now: datetime) -> tuple[bool, datetime | None]:
    """(True, the opening send_window_openings gives every recipient) when it is the same for all of them:
    no window (None), or a window in one named zone; (False, None) for a window in each recipient's zone."""
    window: SendWindow | None = send_window_from_stored(campaign.send_window)
    if window is None:
        return True, None
    if window.zone == RECIPIENT:
        return False, None
    opening = next_opening(window, window.zone, now)
    return True, opening if opening > now else None


def send_window_prefix_openings(*, campaign: Campaign, now: datetime) -> dict[str, datetime]:
    """For a window in each recipient's zone, the recipients that only their phone number places (no zone in
    their contact fields or their contact's attributes): per first digits of the number ("+331"), the earliest
    opening of the window among every zone recipient_zones may give them, the tenant's included (each zone
    phonenumbers keeps for such numbers: send_windows.zones_of_phone_prefix), where the window is closed in all
    of them now. Whichever of those zones is a recipient's, its window is closed until then, so it can wait out
    of the batches' way; the batch that claims it once it is due reads its own zone. Prefixes whose window is
    open in one of their zones are left out: their recipients are decided by the batches (send_window_hold)."""
    window: SendWindow | None = send_window_from_stored(campaign.send_window)
    if window is None or window.zone != RECIPIENT or campaign.channel.media_type not in ("whatsapp", "sms"):
        return {}
    tenant = campaign.channel.tenant
    tenant_zone = tenant.timezone if is_time_zone(tenant.timezone) else "UTC"
    openings: dict[str, datetime] = {}

    def opening(zone: str) -> datetime:
        if zone not in openings:
            openings[zone] = next_opening(window, zone, now)
        return openings[zone]

    if opening(tenant_zone) <= now:
        return {}
    result = {}
    for number in range(10 ** PHONE_PREFIX_DIGITS):
        prefix = f"{number:0{PHONE_PREFIX_DIGITS}d}"
        earliest = min(opening(zone) for zone in zones_of_phone_prefix(prefix) | {tenant_zone})
        if earliest > now:
            result[f"+{prefix}"] = earliest
    return result


def send_window_changed(*, campaign: Campaign, now: datetime) -> int:
    """After the window of a campaign not yet started changed: its pending recipients' `next_window_at`,
    decided when they were stored, is decided again, set-based. In one named zone (or without a window) all
    take the same opening (none); in each recipient's zone they are cleared, and the batches decide each as
    they claim it (send_window_hold). Returns how many rows were written."""
    shared, opening = send_window_shared_opening(campaign=campaign, now=now)
    pending = CampaignRecipient.objects.filter(campaign=campaign, message__isnull=True, error="")
    if not shared:
        opening = None
    return pending.exclude(next_window_at=opening).update(next_window_at=opening) if opening else \
        pending.filter(next_window_at__isnull=False).update(next_window_at=None)


def send_window_hold(*, campaign: Campaign, recipient_ids: list[int], now: datetime) -> list[int]:
    """Of the recipients a batch claimed, those inside the campaign's window now (all of them without a
    window); the others are released, pending, with the next opening of their window in `next_window_at`.
    (Most of those outside it were given theirs when the audience was stored: send_window_openings.)"""
    if not campaign.send_window or not recipient_ids:
        return recipient_ids
    recipients = list(CampaignRecipient.objects.filter(pk__in=recipient_ids)
                      .only("pk", "client_id", "contact_fields", "next_window_at").order_by("row_number"))
    inside, held = [], []
    for recipient, opening in zip(recipients, send_window_openings(campaign=campaign, recipients=recipients,
                                                                    now=now), strict=True):
        if opening is None:
            inside.append(recipient.pk)
        else:
            held.append({"pk": recipient.pk, "next_window_at": opening})
    bulk_update_rows(CampaignRecipient, held, ["next_window_at"], constants={"claimed_until": None})
    return inside


def waiting_recipients(*, campaign: Campaign, now: datetime) -> int:
    """How many recipients wait for their window to open (pending, with a next_window_at still ahead)."""
    if not campaign.send_window:
        return 0
    return CampaignRecipient.objects.filter(
        campaign=campaign, message__isnull=True, error="", next_window_at__isnull=False, next_window_at__gt=now
    ).count()


def due_recipients_filter(now: datetime) -> Q:
    """Recipients waiting for their window whose time has come (read through recipient_waiting)."""
    return Q(message__isnull=True, error="", next_window_at__isnull=False, next_window_at__lte=now)
