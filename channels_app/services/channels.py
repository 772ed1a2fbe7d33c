"""Channels: creation and update with their endpoints and inbound route."""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from channels_app import options_catalog
from channels_app.audit import audit_children, audit_muted
from channels_app.choices import Transport
from channels_app.errors import InvalidFields, InvalidParameter
from channels_app.models import Channel, Endpoint, generate_channel_secret, generate_verify_token
from channels_app.outbound import url_refusal
from channels_app.selectors import channels_by_id
from channels_app.services.options import option_reset, option_set, option_value
from channels_app.validators import validate_queue_key

INBOUND_ROUTE = (options_catalog.CHANNEL, "inbound-route-by-call")


def channel_inbound_route(*, channel: Channel) -> str:
    """The channel's `inbound-route-by-call` chat queue key ("" when none)."""
    section, name = INBOUND_ROUTE
    return option_value(section=section, name=name, channel=channel)


@transaction.atomic
def channel_save(
    *,
    channel: Channel,
    endpoints: list[str] | None = None,
    inbound_route_by_call: str | None = None,
) -> Channel:
    """Validate and save a channel (new or changed), generating its secret when
    blank. `endpoints` (chat queue keys) replaces the channel's endpoints when
    given; `inbound_route_by_call` sets its route ("" removes the override).
    Everything is validated before anything is written; errors are an
    InvalidFields keyed by field. The webhook URL must not be, or resolve
    to, an internal address (channels_app/outbound.py)."""
    channel.ensure_secret()
    if channel.pk and channel.previous_secret and channel.secret != (
            Channel.objects.filter(pk=channel.pk).values_list("secret", flat=True).first()):
        # A secret set by hand replaces every earlier one at once: the grace of a rotation ends with it.
        channel.previous_secret, channel.previous_secret_until = "", None
    if channel.pk and channel.needs_attention:
        # A new access token is the operator's answer to "needs attention" (Meta refused the old one).
        old_token = Channel.objects.filter(pk=channel.pk).values_list("access_token", flat=True).first()
        if old_token != channel.access_token:
            channel.needs_attention = ""
    errors: dict[str, list[str]] = {}
    try:
        channel.full_clean()
    except ValidationError as error:
        errors.update(error.message_dict)
    # The outbound address rules (API.md, "Safe by default"): not an internal address, no credentials.
    if channel.webhook_url and "webhook_url" not in errors and (refusal := url_refusal(channel.webhook_url)):
        errors["webhook_url"] = [refusal]
    if endpoints is not None:
        for key in endpoints:
            try:
                validate_queue_key(key, tenant_id=channel.tenant_id)
            except ValidationError as error:
                errors.setdefault("endpoints", []).extend(error.messages)
        if len(set(endpoints)) != len(endpoints):
            errors.setdefault("endpoints", []).append("An endpoint is listed twice.")
    if inbound_route_by_call:
        try:
            validate_queue_key(inbound_route_by_call, tenant_id=channel.tenant_id)
        except ValidationError as error:
            errors["inbound_route_by_call"] = error.messages
    if errors:
        raise InvalidFields(errors)

    channel.save()
    if endpoints is not None:
        before = sorted(channel.endpoints.values_list("queue_key", flat=True))
        with audit_muted(Endpoint):  # recorded once, as the channel's endpoints
            channel.endpoints.exclude(queue_key__in=endpoints).delete()
            existing = set(channel.endpoints.values_list("queue_key", flat=True))
            Endpoint.objects.bulk_create(
                [Endpoint(channel=channel, queue_key=key) for key in endpoints if key not in existing]
            )
        # bulk_create sends no signal: the channel kept with its endpoints (selectors.channels_by_id) is dropped
        # here, and again once committed (a request may have read the old endpoints meanwhile)
        channels_by_id.clear()
        transaction.on_commit(channels_by_id.clear)
        audit_children(parent=channel, name="endpoints", before=before, after=sorted(endpoints))
    if inbound_route_by_call is not None:
        section, name = INBOUND_ROUTE
        if inbound_route_by_call:
            option_set(section=section, name=name, value=inbound_route_by_call, channel=channel)
        else:
            option_reset(section=section, name=name, channel=channel)
    return channel


SECRET_GRACE_HOURS_MAX = 24


@transaction.atomic
def channel_rotate_secret(*, channel: Channel, grace_hours: int = 0) -> str:
    """Replace the channel's secret with a new generated one and return it:
    the only moment it is shown (API.md, "Secrets are shown once").

    With `grace_hours` (0 to 24), inbound `/nexus` requests signed with the
    old secret are still accepted for that long, so that the third party can
    change its secret without losing customer messages; our webhooks are
    signed with the new secret at once. A grace of 0 ends the old secret now
    (and the grace of an earlier rotation)."""
    if isinstance(grace_hours, bool) or not isinstance(grace_hours, int) or not (
            0 <= grace_hours <= SECRET_GRACE_HOURS_MAX):
        raise InvalidParameter(f"grace_hours must be a whole number of hours from 0 to {SECRET_GRACE_HOURS_MAX}.",
                               field="grace_hours")
    if grace_hours and channel.secret:
        channel.previous_secret = channel.secret
        channel.previous_secret_until = timezone.now() + timedelta(hours=grace_hours)
    else:
        channel.previous_secret, channel.previous_secret_until = "", None
    channel.secret = generate_channel_secret()
    channel.save(update_fields=["secret", "previous_secret", "previous_secret_until", "updated_at"])
    return channel.secret


@transaction.atomic
def channel_rotate_verify_token(*, channel: Channel) -> str:
    """WhatsApp Cloud API: replace the channel's verify token with a generated
    one and return it, shown this once. Meta asks for it only when the webhook
    URL is verified (*Verify and save*): enter the new one there."""
    if channel.transport != Transport.WHATSAPP_CLOUD:
        raise InvalidParameter("Only a WhatsApp Cloud API channel (transport whatsapp_cloud) has a verify token.",
                               field="transport")
    channel.verify_token = generate_verify_token()
    channel.save(update_fields=["verify_token", "updated_at"])
    return channel.verify_token


def channel_inbound_secrets(*, channel: Channel) -> list[str]:
    """The secrets an inbound `/nexus` request of the channel may be signed with now."""
    return channel.inbound_secrets(timezone.now())


TEST_MESSAGE_TEXT = "Test message from the Digital Messaging Server: please ignore."


def channel_send_test(*, channel: Channel):
    """Send one test webhook through the channel's transport, as an agent's
    message would leave, and return the transport's `SendResult` (status,
    latency, the answer's excerpt). Nothing is stored: no interaction, message
    or delivery; the message id starts with `test-` so the third party can
    tell it apart."""
    import uuid

    from channels_app.transports import TRANSPORTS, OutgoingMessage

    outgoing = OutgoingMessage(
        message_id=f"test-{uuid.uuid4().hex[:16]}",
        interaction_id="",
        channel_id=channel.channel_id,
        media_type=channel.media_type,
        business_id=channel.business_id,
        client_id=channel.business_id,
        payload={"text": TEST_MESSAGE_TEXT},
        webhook_url=channel.webhook_url,
        secret=channel.secret,
    )
    return TRANSPORTS[channel.transport].send(outgoing)


def refuse_while_used(instance, field: str, *relations: str, advice: str = "") -> None:
    """Deleting what interactions, messages or campaigns still refer to would
    fail (PROTECT): an error naming them instead."""
    used_by = [relation.replace("_", " ") for relation in relations if getattr(instance, relation).exists()]
    if used_by:
        raise InvalidParameter(
            f"It is still used by its {', '.join(used_by)}: it cannot be deleted{'; ' + advice if advice else ''}.",
            field=field,
        )


@transaction.atomic
def channel_delete(*, channel: Channel) -> None:
    refuse_while_used(channel, "channel_id", "interactions", "messages", "deliveries", "campaigns",
                      advice="disable it instead")
    channel.delete()
