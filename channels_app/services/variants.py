"""Campaign variants (API.md "Audiences, send windows and variants"): two to
five standard responses with shares that add up to 100; each recipient gets
one, fixed by its campaign and its own id, so that a batch run again after a
restart (or by another worker) sends it the same one."""

import hashlib
from dataclasses import dataclass

from django.db import transaction

from channels_app.errors import CampaignStateConflict, InvalidParameter
from channels_app.models import Campaign, CampaignState, CampaignVariant, Channel, StandardResponse
from channels_app.models.campaigns import VARIANTS_MAX, VARIANTS_MIN
from channels_app.services.invitations import CONTENT_TYPES_BY_MEDIA

FIELD = "variants"


@dataclass(frozen=True)
class VariantSpec:
    standard_response: StandardResponse
    share: int


def variant_bucket(*, campaign_id: int, recipient_id: int) -> int:
    """0..99 from the campaign's and the recipient's ids alone: the same in every process and after every
    restart (a digest, not Python's salted `hash`)."""
    digest = hashlib.blake2b(f"{campaign_id}:{recipient_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100


def variant_position(*, bucket: int, shares: list[int]) -> int:
    """The position of the variant whose part of 0..99 holds `bucket`: shares 33/33/34 give 0..32 to the
    first, 33..65 to the second and 66..99 to the third."""
    upper = 0
    for position, share in enumerate(shares):
        upper += share
        if bucket < upper:
            return position
    return len(shares) - 1


def variant_for(*, campaign_id: int, recipient_id: int, shares: list[int]) -> int:
    return variant_position(bucket=variant_bucket(campaign_id=campaign_id, recipient_id=recipient_id),
                            shares=shares)


def variants_parse(*, channel: Channel, entries) -> list[VariantSpec]:
    """Check a campaign's `variants` whole before anything is stored: a list of two to five
    {"standard_response": <id>, "share": <whole number>} whose shares add up to 100, each response of the
    channel's tenant and of a content type the channel's media can send. Refused: InvalidParameter naming
    `variants` (which entry, and why)."""
    if not isinstance(entries, list):
        raise InvalidParameter("variants must be a list of {\"standard_response\", \"share\"}.", field=FIELD)
    if not VARIANTS_MIN <= len(entries) <= VARIANTS_MAX:
        raise InvalidParameter(f"A campaign has {VARIANTS_MIN} to {VARIANTS_MAX} variants, not {len(entries)}.",
                               field=FIELD)
    wanted, shares = [], []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or set(entry) - {"standard_response", "share"}:
            raise InvalidParameter(f"Variant {number}: an object with standard_response and share only.",
                                   field=FIELD)
        response_id, share = entry.get("standard_response"), entry.get("share")
        if not isinstance(response_id, str) or not response_id or len(response_id) > 64:
            raise InvalidParameter(f"Variant {number}: standard_response must be a standard response's id.",
                                   field=FIELD)
        if isinstance(share, bool) or not isinstance(share, int) or not 1 <= share <= 99:
            raise InvalidParameter(f"Variant {number}: share must be a whole number from 1 to 99, not {share!r}.",
                                   field=FIELD)
        wanted.append(response_id)
        shares.append(share)
    if sum(shares) != 100:
        raise InvalidParameter(f"The shares of the variants add up to {sum(shares)}, not 100.", field=FIELD)
    # Another tenant's response is as unknown as one that does not exist.
    found = {response.pk: response
             for response in StandardResponse.objects.filter(pk__in=wanted, tenant_id=channel.tenant_id)}
    allowed = CONTENT_TYPES_BY_MEDIA.get(channel.media_type, set())
    specs = []
    for number, (response_id, share) in enumerate(zip(wanted, shares, strict=True), start=1):
        response = found.get(response_id)
        if response is None:
            raise InvalidParameter(f"Variant {number}: no standard response {response_id!r} in the channel's "
                                   "tenant.", field=FIELD)
        if response.content_type not in allowed:
            raise InvalidParameter(f"Variant {number}: standard response {response_id} is {response.content_type}, "
                                   f"which a {channel.media_type} channel cannot send.", field=FIELD)
        specs.append(VariantSpec(standard_response=response, share=share))
    return specs


def variants_store(*, campaign: Campaign, specs: list[VariantSpec]) -> list[CampaignVariant]:
    """Replace the campaign's variants (in the caller's transaction)."""
    campaign.variants.all().delete()
    return CampaignVariant.objects.bulk_create([
        CampaignVariant(campaign=campaign, position=position, standard_response=spec.standard_response,
                        share=spec.share)
        for position, spec in enumerate(specs)
    ])


@transaction.atomic
def campaign_variants_set(*, campaign: Campaign, entries) -> list[CampaignVariant]:
    """Set (or, with an empty list, remove) the variants of a draft or scheduled campaign: once it has
    reached recipients, their variants are fixed."""
    locked = Campaign.objects.select_for_update().select_related("channel").get(pk=campaign.pk)
    if locked.state not in (CampaignState.DRAFT, CampaignState.SCHEDULED):
        raise CampaignStateConflict(f"The variants of a {locked.state} campaign cannot be changed.", field=FIELD)
    if not entries:
        locked.variants.all().delete()
        return []
    specs = variants_parse(channel=locked.channel, entries=entries)
    return variants_store(campaign=locked, specs=specs)


def campaign_variants(*, campaign_id: int) -> list[CampaignVariant]:
    return list(CampaignVariant.objects.filter(campaign_id=campaign_id).select_related("standard_response")
                .order_by("position"))
