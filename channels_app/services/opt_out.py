"""Opt-out on every channel type (API.md "Opt-out"): stop and start keywords,
the confirmation text, and the per-channel opted-out state of a contact that
InviteToChat and campaigns respect (agents may still answer inside an open
session)."""

from django.db import transaction

from channels_app import options_catalog
from channels_app.errors import InvalidParameter
from channels_app.models import Channel, Contact, ContactOptOut, Interaction, Message
from channels_app.services.options import option_value


def _keywords(name: str, channel: Channel) -> set[str]:
    value = option_value(section=options_catalog.DMS, name=name, channel=channel) or ""
    return {word.strip().casefold() for word in value.split(",") if word.strip()}


OPTED_OUT, OPTED_IN = "opted out", "opted in"


def opt_out_confirmation(*, channel: Channel) -> str:
    """The text that answers a stop keyword (option opt-out-confirmation; empty: no answer)."""
    return option_value(section=options_catalog.DMS, name="opt-out-confirmation", channel=channel) or ""


def opt_out_keywords_apply(*, message: Message, interaction: Interaction) -> str | None:
    """A customer message whose whole text is a stop keyword opts its contact out of the channel; a start
    keyword opts them back in. Returns OPTED_OUT, OPTED_IN or None (the caller answers an opt-out with
    `opt_out_confirmation`, through the normal delivery path). Called in the transaction that stores the
    message."""
    text = (message.text or "").strip().casefold()
    if not text or len(text) > 40:  # keywords are single words: most messages stop here, without a query
        return None
    channel = message.channel
    if text in _keywords("opt-out-keywords", channel):
        _, created = ContactOptOut.objects.get_or_create(
            contact_id=interaction.contact_id, channel=channel, defaults={"source": "keyword"})
        return OPTED_OUT
    if text in _keywords("opt-in-keywords", channel):
        ContactOptOut.objects.filter(contact_id=interaction.contact_id, channel=channel).delete()
        return OPTED_IN
    return None


def opted_out_contact_ids(*, channel: Channel, contact_ids: list[int]) -> set[int]:
    """Which of these contacts opted out of the channel (one query for a whole batch)."""
    if not contact_ids:
        return set()
    return set(ContactOptOut.objects.filter(channel=channel, contact_id__in=contact_ids)
               .values_list("contact_id", flat=True))


def contact_opted_out_channels(*, contact: Contact) -> list[str]:
    return sorted(contact.opt_outs.values_list("channel__channel_id", flat=True))


@transaction.atomic
def contact_opt_outs_set(*, contact: Contact, channel_ids: list[str], source: str = "api") -> list[str]:
    """Replace the channels the contact opted out of (channels of the contact's tenant)."""
    channels = {c.channel_id: c for c in Channel.objects.filter(tenant_id=contact.tenant_id,
                                                                 channel_id__in=channel_ids)}
    unknown = sorted(set(channel_ids) - set(channels))
    if unknown:
        raise InvalidParameter(f"Unknown channel(s): {', '.join(unknown)}.", field="opted_out")
    contact.opt_outs.exclude(channel__channel_id__in=channel_ids).delete()
    existing = set(contact.opt_outs.values_list("channel__channel_id", flat=True))
    ContactOptOut.objects.bulk_create([ContactOptOut(contact=contact, channel=channels[channel_id], source=source)
                                       for channel_id in sorted(set(channel_ids) - existing)])
    return contact_opted_out_channels(contact=contact)
