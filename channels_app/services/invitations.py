"""`ChatService.InviteToChat` (dms-invite-to-chat): start an outbound chat
session from a strategy and send it a standard response."""

from dataclasses import dataclass

from django.db import transaction

from channels_app.choices import ContentType, MediaType
from channels_app.errors import ExecutionFailed, InvalidParameter, NotFound, TransportUnreachable
from channels_app.models import Channel, Interaction, StandardResponse
from channels_app.options_catalog import DMS
from channels_app.services.channels import channel_inbound_route
from channels_app.services.contacts import contact_identify
from channels_app.services.interactions import (
    hub_driver_attributes,
    interaction_create,
    interaction_end,
    message_queue_outbound,
)
from channels_app.services.options import option_value
from channels_app.services.standard_responses import standard_response_render
from channels_app.validators import validate_queue_key

TRUE_VALUES = {"true", "1", "yes"}
MAX_ID_LENGTH = 200  # the length of the stored client id, business id and queue key

# Content types a standard response may have on each media type (dms-invite-to-chat: "The following
# content types are supported"; interactive WhatsApp messages follow the WhatsApp guide).
CONTENT_TYPES_BY_MEDIA = {
    MediaType.WHATSAPP: {ContentType.TEXT, ContentType.NOTIFICATION, ContentType.RICH_MEDIA,
                         ContentType.REPLY_BUTTONS, ContentType.LIST},
    MediaType.ABC: {ContentType.TEXT, ContentType.ABC_QUICK_REPLIES, ContentType.ABC_LIST_PICKER,
                    ContentType.ABC_CAROUSEL},
    MediaType.SMS: {ContentType.TEXT},
    MediaType.EMAIL: {ContentType.TEXT},
}
FALSE_VALUES = {"false", "0", "no", ""}


@dataclass(frozen=True)
class Invitation:
    interaction: Interaction
    message_id: str | None


def parse_flag(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value if value is not None else "").strip().lower()
    if text in TRUE_VALUES:
        return True
    if text in FALSE_VALUES:
        return False
    raise InvalidParameter(f"{name} incorrect: {value!r} is neither true nor false.", field=name)


def channel_resolve(channel_id: str | None) -> Channel:
    """`_umsChannel`: mandatory only when more than one channel is configured."""
    if channel_id:
        channel = Channel.objects.filter(channel_id=channel_id).first()
        if channel is None:
            raise NotFound(f"_umsChannel unknown channel {channel_id!r}.", field="_umsChannel")
        return channel
    channels = list(Channel.objects.filter(enabled=True)[:2])
    if len(channels) != 1:
        raise InvalidParameter(
            "_umsChannel incorrect: the parameter is mandatory when more than one channel is configured."
            if channels else "_umsChannel incorrect: no channel is configured.",
            field="_umsChannel",
        )
    return channels[0]


def invite_to_chat(
    *,
    channel: Channel,
    client_id: str,
    business_id: str | None = None,
    standard_response_id: str | None = None,
    chat_queue_key: str | None = None,
    terminate_session: bool = False,
    contact_fields: dict | None = None,
    agent_fields: dict | None = None,
    custom_properties=None,
    user_data: dict | None = None,
    trace_id: str = "",
) -> Invitation:
    """Create the interaction (Outbound/OutboundNew when the user data has
    GCTI_Chat_SubmitAsOutbound = true), attach all user data, find or create
    the contact, render the standard response with Contact, Agent and
    CustomProperties, and queue it for the channel after commit. With
    `terminate_session` the session ends once the message is handed over."""
    user_data = dict(user_data or {})
    if not client_id:
        raise InvalidParameter("_umsClientId incorrect: the parameter is mandatory.", field="_umsClientId")
    for name, value in (("_umsClientId", client_id), ("_umsBusinessId", business_id),
                        ("ChatQueueKey", chat_queue_key)):
        if value and len(value) > MAX_ID_LENGTH:
            raise InvalidParameter(f"{name} incorrect: longer than {MAX_ID_LENGTH} characters.", field=name)
    if not channel.enabled:
        raise TransportUnreachable(
            f"InviteToChat connection with {channel.channel_id} failed: the channel is disabled."
        )
    if business_id and business_id.lstrip("+") != channel.business_id.lstrip("+"):
        raise InvalidParameter(
            f"_umsBusinessId incorrect: {business_id!r} is not the business id of {channel.channel_id}.",
            field="_umsBusinessId",
        )
    queue = chat_queue_key or channel_inbound_route(channel=channel)
    if not queue:
        raise InvalidParameter(
            f"ChatQueueKey incorrect: none given and channel {channel.channel_id} has no inbound-route-by-call.",
            field="ChatQueueKey",
        )
    try:
        validate_queue_key(queue)
    except Exception as error:
        raise InvalidParameter(f"ChatQueueKey incorrect: {' '.join(getattr(error, 'messages', [str(error)]))}",
                               field="ChatQueueKey") from error
    response = None
    if standard_response_id:
        response = StandardResponse.objects.prefetch_related("attachments").filter(pk=standard_response_id).first()
        if response is None:
            raise NotFound(f"StandardResponseId unknown standard response {standard_response_id!r}.",
                           field="StandardResponseId")
        if response.content_type not in CONTENT_TYPES_BY_MEDIA.get(channel.media_type, set()):
            raise ExecutionFailed(
                f"InviteToChat failed to execute request: StandardResponseId {response.pk} is "
                f"{response.content_type}, which a {channel.media_type} channel cannot send.",
                field="StandardResponseId",
            )
    identification_attribute = option_value(section=DMS, name="contact-identification-attribute", channel=channel)
    outbound = parse_flag(user_data.get("GCTI_Chat_SubmitAsOutbound", "false"), "GCTI_Chat_SubmitAsOutbound")

    with transaction.atomic():
        contact = contact_identify(
            channel=channel,
            client_id=client_id,
            phone_number=str(user_data.get(identification_attribute) or ""),
            properties=contact_fields,
        )
        attributes = hub_driver_attributes(
            channel=channel, client_id=client_id, business_id=business_id or channel.business_id
        )
        interaction = interaction_create(
            channel=channel,
            contact=contact,
            client_id=client_id,
            queue=queue,
            outbound=outbound,
            user_data={**attributes, **user_data},
            terminate_after_send=terminate_session,
        )
        if response is None:
            if terminate_session:  # nothing to hand over: "ended immediately"
                interaction_end(interaction=interaction, reason="TerminateSessionFlag")
            return Invitation(interaction, None)
        fields = {
            "Contact": {**contact.field_code_values(), **(contact_fields or {})},
            "Agent": agent_fields or {},
            "CustomProperties": custom_properties or {},
            "Interaction": {"Id": interaction.pk, "DateCreated": interaction.created_at.isoformat(),
                            "FromAddress": channel.business_id, "ToAddress": client_id},
        }
        try:
            rendered = standard_response_render(response=response, fields=fields)
        except InvalidParameter as error:
            raise ExecutionFailed(f"InviteToChat failed to execute request: {error.message}",
                                  field="StandardResponseId") from error
        if rendered.missing:
            raise ExecutionFailed(
                "InviteToChat failed to execute request: no value for field code(s) "
                + ", ".join(rendered.missing) + f" of standard response {response.pk}.",
                field="StandardResponseId",
            )
        message = message_queue_outbound(interaction=interaction, payload=rendered.payload, trace_id=trace_id)
    return Invitation(interaction, message.pk)
