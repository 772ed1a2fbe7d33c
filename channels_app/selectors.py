"""Reads scoped by the caller: tenants are the wall (API.md, "Who may do what").

Every interface (the API, the admin, ESP) reads through these, so an object
can't be visible through one door and hidden behind another. An object of a
tenant the caller is not a member of does not exist for that caller: the
`*_get` selectors raise the same `NotFound` whether it is missing or hidden,
so existence never leaks (Zulip's `access_*` helpers)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Model, Q, QuerySet

from channels_app.errors import NotFound
from channels_app.kept import KeptRows
from channels_app.models import (
    Attachment,
    AuditEntry,
    Campaign,
    CampaignRecipient,
    Channel,
    Contact,
    ContactOptOut,
    Delivery,
    DeliveryAttempt,
    EarlyReceipt,
    Endpoint,
    Interaction,
    InteractionNote,
    Membership,
    Message,
    MessageAttachment,
    Offer,
    OptionValue,
    Queue,
    Segment,
    StandardResponse,
    StandardResponseCategory,
    Tenant,
    WhatsAppInbox,
    WhatsAppMedia,
    WhatsAppTemplate,
)

# The path from each tenant-owned model to its tenant's id.
TENANT_PATHS: dict[type[Model], str] = {
    Tenant: "pk",
    Membership: "tenant",
    Channel: "tenant",
    Endpoint: "channel__tenant",
    Contact: "tenant",
    Interaction: "channel__tenant",
    Message: "channel__tenant",
    MessageAttachment: "message__channel__tenant",
    EarlyReceipt: "channel__tenant",
    Delivery: "channel__tenant",
    DeliveryAttempt: "delivery__channel__tenant",
    Campaign: "channel__tenant",
    CampaignRecipient: "campaign__channel__tenant",
    StandardResponse: "tenant",
    StandardResponseCategory: "tenant",
    Attachment: "tenant",
    AuditEntry: "tenant",
    ContactOptOut: "contact__tenant",
    WhatsAppTemplate: "channel__tenant",
    WhatsAppInbox: "channel__tenant",
    WhatsAppMedia: "message__channel__tenant",
    Queue: "tenant",
    Segment: "tenant",
    Offer: "interaction__channel__tenant",
    InteractionNote: "interaction__channel__tenant",
}


def tenant_ids_for(user) -> frozenset[int] | None:
    """The ids of the tenants `user` is a member of; None for a superuser (every
    tenant). Read once per request object, so a removed membership takes effect
    on the user's next request."""
    if user is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    if user.is_superuser:
        return None
    cached = getattr(user, "_tenant_ids_cache", None)
    if cached is None:
        cached = frozenset(Membership.objects.filter(user=user).values_list("tenant_id", flat=True))
        user._tenant_ids_cache = cached
    return cached


def is_scoped(model: type[Model]) -> bool:
    return model in TENANT_PATHS or model is OptionValue


def restrict(queryset: QuerySet, user) -> QuerySet:
    """`queryset` narrowed to what `user`'s tenants hold (NetBox's `restrict`).
    A model that belongs to no tenant (business attributes) is returned whole;
    global option values belong to every tenant, channel overrides to their
    channel's."""
    tenant_ids = tenant_ids_for(user)
    if tenant_ids is None:
        return queryset
    model = queryset.model
    if model is OptionValue:
        return queryset.filter(Q(channel__isnull=True) | Q(channel__tenant__in=tenant_ids))
    path = TENANT_PATHS.get(model)
    if path is None:
        return queryset
    return queryset.filter(**{f"{path}__in": tenant_ids})


def visible_get(queryset: QuerySet, *, user, what: str, **lookup) -> Model:
    """The one object of `queryset` matching `lookup` that `user` may see, or
    NotFound naming `what` (the same whether it is missing or hidden)."""
    found = restrict(queryset, user).filter(**lookup).first()
    if found is None:
        raise NotFound(f"Unknown {what}.", field=next(iter(lookup), None))
    return found


def tenant_get(*, user, tenant_id: int) -> Tenant:
    return visible_get(Tenant.objects.all(), user=user, what="tenant", pk=tenant_id)


def tenant_list(*, user) -> QuerySet:
    return restrict(Tenant.objects.all(), user)


def channel_list(*, user) -> QuerySet:
    return restrict(Channel.objects.select_related("tenant"), user)


# Channels by `channel_id` (kept.py): every customer message and every ESP request names its channel. A circuit
# that opened or closed in another process is seen within CHANNEL_CACHE_SECONDS.
channels_by_id = KeptRows(  # with its endpoints: an InviteToChat's ChatQueueKey must be one of them
    lambda channel_id: Channel.objects.select_related("tenant").prefetch_related("endpoints")
    .filter(channel_id=channel_id).first(),
    seconds=lambda: settings.CHANNEL_CACHE_SECONDS,
)

# Standard responses by (id, tenant id), with their attachments (kept.py): a strategy's InviteToChat names
# the same few responses again and again.
standard_responses_for_sending = KeptRows(
    lambda key: StandardResponse.objects.prefetch_related("attachments").filter(pk=key[0], tenant_id=key[1]).first(),
    seconds=lambda: settings.STANDARD_RESPONSE_CACHE_SECONDS,
)


def standard_response_for_sending(*, standard_response_id: str, tenant_id: int) -> StandardResponse | None:
    """The tenant's standard response `standard_response_id` with its attachments, as read at most
    STANDARD_RESPONSE_CACHE_SECONDS ago in this process; None when the tenant has none of that id."""
    return standard_responses_for_sending.get((standard_response_id, tenant_id))


def channel_find(*, channel_id: str, user=None) -> Channel | None:
    """The channel `channel_id` (recently read: `channels_by_id`), None when there is none or, with `user`,
    when it belongs to none of their tenants (hidden as if missing)."""
    channel = channels_by_id.get(channel_id)
    if channel is None or user is None:
        return channel
    tenant_ids = tenant_ids_for(user)
    return channel if tenant_ids is None or channel.tenant_id in tenant_ids else None


def channel_get(*, user, channel_id: str) -> Channel:
    return visible_get(Channel.objects.select_related("tenant"), user=user, what="channel", channel_id=channel_id)


def interaction_list(*, user) -> QuerySet:
    return restrict(Interaction.objects.select_related("channel"), user)


def interaction_get(*, user, interaction_id: str) -> Interaction:
    return visible_get(Interaction.objects.select_related("channel"), user=user, what="interaction", pk=interaction_id)


def contact_list(*, user) -> QuerySet:
    return restrict(Contact.objects.all(), user)


def standard_response_list(*, user) -> QuerySet:
    return restrict(StandardResponse.objects.select_related("category"), user)


def standard_response_get(*, user, response_id: str) -> StandardResponse:
    return visible_get(StandardResponse.objects.all(), user=user, what="standard response", pk=response_id)


def segment_list(*, user) -> QuerySet:
    return restrict(Segment.objects.all(), user)


def campaign_list(*, user) -> QuerySet:
    return restrict(Campaign.objects.select_related("channel", "standard_response"), user)


def attachment_list(*, user) -> QuerySet:
    return restrict(Attachment.objects.all(), user)


def delivery_list(*, user) -> QuerySet:
    return restrict(Delivery.objects.select_related("channel", "message"), user)


def user_list(*, user) -> QuerySet:
    """Users the caller may see: every user for a superuser; else the members
    of the caller's tenants (and the caller)."""
    users = get_user_model().objects.all()
    tenant_ids = tenant_ids_for(user)
    if tenant_ids is None:
        return users
    return users.filter(Q(memberships__tenant__in=tenant_ids) | Q(pk=user.pk)).distinct()


def default_tenant(user, *, given=None, parent=None) -> Tenant | None:
    """The tenant of a new object when none is named: its parent's (a
    category, a channel), else the first of the caller's tenants (None when
    the caller is a member of none)."""
    if given is not None:
        return given
    if parent is not None:
        return parent.tenant
    return restrict(Tenant.objects.order_by("pk"), user).first()


def interaction_history(*, user, interaction: Interaction) -> list[Interaction]:
    """"See older messages..." (WhatsApp guide): the contact's earlier interactions, newest first (their
    messages: services/transcripts.py); those of the interaction's channel, or of every channel of its media
    (WhatsApp: "messages from multiple WhatsApp channels"; contacts are per tenant, so of the same tenant) when
    `whatsappsession.show-cross-channel-messages` is true; at most
    `whatsappsession.transcript-interactions-count`. Both options take effect at the next interaction: the
    values kept with this interaction apply."""
    from channels_app.option_values import session_option
    from channels_app.options_catalog import IW

    count = session_option(interaction=interaction, section=IW, name="whatsappsession.transcript-interactions-count")
    cross = session_option(interaction=interaction, section=IW, name="whatsappsession.show-cross-channel-messages")
    earlier = Interaction.objects.select_related("channel").filter(
        contact_id=interaction.contact_id, channel__tenant_id=interaction.channel.tenant_id,
        created_at__lt=interaction.created_at,
    )
    if user is not None:
        earlier = restrict(earlier, user)
    if cross:  # "messages from multiple WhatsApp channels": other channels of the same media, not every media
        earlier = earlier.filter(channel__media_type=interaction.channel.media_type)
    else:
        earlier = earlier.filter(channel_id=interaction.channel_id)
    return list(earlier.order_by("-created_at", "-id")[:count])


# Queues by chat queue key (kept.py): every customer message of an interaction nobody holds asks whether its
# queue is routed by the server.
queues_by_key = KeptRows(
    lambda key: Queue.objects.filter(key=key).first(),
    seconds=lambda: settings.CHANNEL_CACHE_SECONDS,
)


def queue_list(*, user) -> QuerySet:
    return restrict(Queue.objects.select_related("tenant"), user)


def queue_get(*, user, key: str) -> Queue:
    """The queue `key` of the caller's tenants; another tenant's key is as unknown as a missing one."""
    return visible_get(Queue.objects.select_related("tenant"), user=user, what="queue", key=key)
