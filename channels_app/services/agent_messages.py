"""Agent messages on an interaction, and new outbound sessions an agent
starts, with the WhatsApp rules: the size limit
(`whatsappsession.max-text-message-size`, bytes of UTF-8), the 24-hour window
from the customer's last message (services.windows), and automatic
notifications outside it."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from channels_app.choices import MediaType
from channels_app.errors import Conflict, InvalidParameter, NotFound
from channels_app.models import Interaction, InteractionState, Message
from channels_app.options_catalog import IW
from channels_app.selectors import standard_response_for_sending
from channels_app.services.email import email_payload, text_limit
from channels_app.services.interactions import interaction_field_values, interaction_locked, message_queue_outbound
from channels_app.services.media import attachments_for_sending, location_payload, media_object
from channels_app.services.options import session_option
from channels_app.services.routing import agent_send_check, interaction_hold_new
from channels_app.services.standard_responses import standard_response_render_for
from channels_app.services.windows import (
    INTERACTIVE_OUTSIDE_WINDOW,
    INTERACTIVE_TYPES,
    NOTIFICATION_TYPES,
    customer_window_closes_at,
    is_open,
    window_applies,
)

SENT_AS_NOTIFICATION = "notification"  # the text went inside the default notification template


@dataclass(frozen=True)
class AgentMessage:
    message: Message
    sent_as: str  # "text", a standard response's content type, or "notification" when wrapped


def _option(interaction: Interaction, name: str):
    return session_option(interaction=interaction, section=IW, name=name)


def _default_notification(interaction: Interaction, text: str) -> dict | None:
    """The agent's text inside the default notification template ({{1}}), when configured."""
    if not _option(interaction, "whatsappsession.enable-free-msg-timespan-monitoring"):
        return None
    template_text = _option(interaction, "whatsappsession.default-notification-text")
    template_id = _option(interaction, "whatsappsession.default-notification-id")
    if not template_text or not template_id:
        return None
    language = _option(interaction, "whatsappsession.default-notification-language")
    combined = template_text.replace("{{1}}", text) if "{{1}}" in template_text else f"{template_text} {text}"
    return {
        "type": "Notification",
        "text": combined,
        "template": {"name": template_id, "id": template_id, "language": language, "parameters": [text]},
    }


def _check_size(interaction: Interaction, text: str, field: str) -> None:
    limit, source = text_limit(interaction=interaction)  # per media type: WhatsApp's limit is not e-mail's
    size = len(text.encode("utf-8"))
    if size > limit:
        raise InvalidParameter(f"The message is {size} bytes (UTF-8); {source} allows {limit}.", field=field)


def _outside_window(interaction: Interaction, text: str, field: str) -> dict:
    notification = _default_notification(interaction, text)
    if notification is None:
        raise Conflict(
            "The WhatsApp 24-hour window has closed: only notifications can be sent (configure "
            "whatsappsession.enable-free-msg-timespan-monitoring and the default notification to send this text "
            "inside it).",
            field=field,
        )
    return notification


def agent_content(
    *,
    interaction: Interaction,
    window_open: bool,
    text: str | None = None,
    standard_response_id: str | None = None,
    fields: dict | None = None,
    attachment_ids: list[int] | None = None,
    location: dict | None = None,
    header_attachment: int | None = None,
) -> tuple[dict, str]:
    """What an agent sends on a session (an existing one, or one being created): the payload and how it
    goes (`sent_as`). A standard response renders by the one rule of every path (the contact's own fields
    fill `Contact` codes; a code without a value is a 400 naming `fields`); outside the window reply
    buttons and lists are a Conflict, text goes inside the default notification or is a Conflict. Files
    (of `POST /api/attachments/`) follow the message; `header_attachment` replaces the file of the
    response's header (the permission is the caller's business: rights.HEADER_ATTACHMENT_RIGHTS); on an
    e-mail channel it leaves as an e-mail."""
    payload, sent_as = _content(interaction=interaction, window_open=window_open, text=text,
                                standard_response_id=standard_response_id, fields=fields,
                                attachment_ids=attachment_ids, location=location)
    if header_attachment is not None:
        payload = _header_replaced(interaction, payload, header_attachment)
    if attachment_ids:
        if not window_open:
            raise Conflict("The WhatsApp 24-hour window has closed: files cannot be sent.", field="attachments")
        files = attachments_for_sending(channel=interaction.channel, ids=attachment_ids)
        payload = {**payload, "attachments": [*payload.get("attachments", ()), *map(media_object, files)]}
    if interaction.channel.media_type == MediaType.EMAIL:
        payload = email_payload(interaction=interaction, payload=payload)
    return payload, sent_as


def _header_replaced(interaction: Interaction, payload: dict, attachment_id: int) -> dict:
    """The rendered response with another file in its header (WhatsApp guide: an agent may "change
    attachments in Notifications" and "in Reply Button"): a file of the tenant, of the header's kind (the
    template approved an image, a video or a document header)."""
    header = payload.get("header")
    if not isinstance(header, dict) or "attachment" not in header:
        raise InvalidParameter("The standard response has no file in its header to replace.",
                               field="header_attachment")
    (attachment,) = _header_files(interaction, attachment_id)
    if attachment.kind != header["type"]:
        raise InvalidParameter(f"The header holds a file of kind {header['type']}; {attachment.name} is "
                               f"{attachment.kind}.", field="header_attachment")
    return {**payload, "header": {"type": header["type"], **media_object(attachment)}}


def _header_files(interaction: Interaction, attachment_id: int):
    try:
        return attachments_for_sending(channel=interaction.channel, ids=[attachment_id])
    except InvalidParameter as error:
        raise InvalidParameter(error.message, field="header_attachment") from error


def _content(*, interaction, window_open, text, standard_response_id, fields, attachment_ids, location):
    if standard_response_id:
        response = standard_response_for_sending(standard_response_id=standard_response_id,
                                                 tenant_id=interaction.channel.tenant_id)
        if response is None:
            raise InvalidParameter(f"Unknown standard response {standard_response_id!r}.",
                                   field="standard_response_id")
        payload = standard_response_render_for(
            response=response, contact=interaction.contact, fields=fields,
            interaction_fields=interaction_field_values(interaction=interaction),
        )
        _check_size(interaction, str(payload.get("text", "")), "standard_response_id")
        if not window_open:
            if response.content_type in INTERACTIVE_TYPES:
                raise Conflict(INTERACTIVE_OUTSIDE_WINDOW, field="standard_response_id")
            if response.content_type not in NOTIFICATION_TYPES:
                return _outside_window(interaction, str(payload.get("text", "")), "standard_response_id"), \
                    SENT_AS_NOTIFICATION
        return payload, str(response.content_type)
    if location is not None:
        if not window_open:
            raise Conflict("The WhatsApp 24-hour window has closed: only notifications can be sent.",
                           field="location")
        return location_payload(location), "location"
    text = text or ""
    if not text.strip() and not attachment_ids:
        raise InvalidParameter("The message text is empty.", field="text")
    _check_size(interaction, text, "text")
    if not window_open:
        return _outside_window(interaction, text, "text"), SENT_AS_NOTIFICATION
    return {"type": "Text", "text": text}, "text"


def session_window_open(*, interaction: Interaction, now: datetime) -> bool:
    return not window_applies(interaction.channel) or is_open(customer_window_closes_at(interaction=interaction), now)


def agent_message_send(
    *,
    tenant_ids: frozenset[int] | None,
    interaction_id: str,
    admit: Callable[[Interaction], dict],
    trace_id: str = "",
    sender=None,
) -> AgentMessage:
    """Queue an agent's message (plain text, a standard response or a location, with files of
    `POST /api/attachments/` after it) on an open interaction of the caller's tenants (`tenant_ids`, as
    selectors.tenant_ids_for gives them: None for every tenant; one of another tenant is not found).
    `admit(interaction)` is the door's own checks (rights, the request's fields), made once the
    interaction is known and locked; it returns the content: `text`, `standard_response_id` with
    `fields`, `location`, `attachments`. With `sender`, an interaction of a queue routed by the server
    takes messages only from the agent it is assigned to, its conference or a supervisor
    (services.routing.agent_may_send; 403 otherwise)."""
    now = timezone.now()
    with transaction.atomic():
        interaction = interaction_locked(interaction_id=interaction_id, tenant_ids=tenant_ids)
        if interaction is None:
            raise NotFound("Unknown interaction.", field="pk")  # as selectors.interaction_get says it
        content = admit(interaction)
        if sender is not None:
            agent_send_check(user=sender, interaction=interaction)
        if interaction.state == InteractionState.ENDED:
            raise Conflict("The session has ended; start a new one (POST /api/interactions/{id}/sessions/).",
                           field="id")
        payload, sent_as = agent_content(
            interaction=interaction, window_open=session_window_open(interaction=interaction, now=now),
            text=content.get("text"), standard_response_id=content.get("standard_response_id"),
            fields=content.get("fields"), attachment_ids=content.get("attachments"),
            location=content.get("location"), header_attachment=content.get("header_attachment"),
        )
        message = message_queue_outbound(interaction=interaction, payload=payload, trace_id=trace_id,
                                         activate=interaction.state == InteractionState.QUEUED)
        return AgentMessage(message, sent_as)


# --- new outbound sessions --------------------------------------------------------------------------------------

OUTBOUND_SESSION_CONFIG_ATTRIBUTE = "_umsOutboundSessionConfig"


@dataclass(frozen=True)
class OutboundChannel:
    channel_id: str
    business_id: str = ""


def outbound_session_channels(*, interaction: Interaction) -> list[OutboundChannel]:
    """The channels an agent may start an outbound session on from this interaction (WhatsApp guide,
    "Configuration for sending outbound messages from other channels"): the attached data's
    `_umsOutboundSessionConfig` (`{"1": {"MediaType", "_umsServer", "_umsChannel", "_umsBusinessId"}, ...}`),
    else the option `whatsappsession.outbound-session-config`
    (`{"channels": [{"server-name", "channel-name", "business-id"}, ...]}`; it takes effect immediately)."""
    attached = (interaction.user_data or {}).get(OUTBOUND_SESSION_CONFIG_ATTRIBUTE)
    if isinstance(attached, str):
        import json

        try:
            attached = json.loads(attached)
        except ValueError:
            attached = None
    if isinstance(attached, dict) and attached:
        return [
            OutboundChannel(str(entry.get("_umsChannel") or ""), str(entry.get("_umsBusinessId") or ""))
            for _key, entry in sorted(attached.items()) if isinstance(entry, dict) and entry.get("_umsChannel")
        ]
    from channels_app.services.options import option_value

    configured = option_value(section=IW, name="whatsappsession.outbound-session-config", channel=interaction.channel)
    entries = (configured or {}).get("channels") if isinstance(configured, dict) else None
    return [
        OutboundChannel(str(entry.get("channel-name") or "").strip(), str(entry.get("business-id") or "").strip())
        for entry in entries or [] if isinstance(entry, dict) and entry.get("channel-name")
    ]


def _client_id_on(channel, contact, current: Interaction) -> str:
    """The customer's id on `channel`: the current session's on its own channel, else the one of the
    contact's last session there, else its phone number (WhatsApp, SMS) or e-mail address."""
    if channel.pk == current.channel_id:
        return current.client_id
    earlier = (Interaction.objects.filter(channel=channel, contact=contact).order_by("-created_at")
               .values_list("client_id", flat=True).first())
    if earlier:
        return earlier
    if channel.media_type in ("whatsapp", "sms") and contact.phone_number:
        return contact.phone_number.lstrip("+")
    if channel.media_type == "email" and contact.email:
        return contact.email
    raise InvalidParameter(
        f"The contact has no {'phone number' if channel.media_type in ('whatsapp', 'sms') else 'address'} "
        f"for channel {channel.channel_id}.", field="channel",
    )


@dataclass(frozen=True)
class NewSession:
    interaction: Interaction
    message: Message
    sent_as: str


def session_start(
    *,
    interaction_id: str,
    channel,
    text: str | None = None,
    standard_response_id: str | None = None,
    fields: dict | None = None,
    header_attachment: int | None = None,
    trace_id: str = "",
    agent=None,
) -> NewSession:
    """A new outbound session with the contact of an interaction (ended or not), on `channel` (WhatsApp
    guide, "Sending outbound messages": a past contact, or "from other media"), and its first message.

    The channel is the interaction's own, or one the outbound session config lists (else 400 naming
    `channel`); the config's business id, when given, must be the channel's. The new session is
    Outbound/OutboundNew, placed in the interaction's queue (on its own channel) or the channel's
    inbound-route-by-call, and carries the hub driver attributes, `GCTI_Chat_SubmitAsOutbound`, the
    interaction it came from (`OriginalInteractionId`) and the `_umsOutboundSessionConfig` it was started
    with. The first message follows the agent-message rules: on WhatsApp outside the customer's window only
    a notification (a notification standard response, or the text inside the default notification
    template when automatic notifications are configured), 409 otherwise. Permissions (another media) are
    the caller's business. On a queue routed by the server the new session is assigned to `agent`, who
    started it (services.routing.interaction_hold_new)."""
    from channels_app.services.channels import channel_inbound_route
    from channels_app.services.interactions import hub_driver_attributes, interaction_new
    from channels_app.services.windows import customer_windows_close_at, window_minutes_for_session

    current = Interaction.objects.select_related("channel", "contact").filter(pk=interaction_id).first()
    if current is None:
        raise NotFound(f"Unknown interaction {interaction_id!r}.", field="id")
    if channel.tenant_id != current.channel.tenant_id:
        raise InvalidParameter(f"Unknown channel {channel.channel_id!r}.", field="channel")
    if not channel.enabled:
        raise Conflict(f"Channel {channel.channel_id} is disabled.", field="channel")
    business_id = channel.business_id
    if channel.pk != current.channel_id:
        listed = {entry.channel_id: entry for entry in outbound_session_channels(interaction=current)}
        entry = listed.get(channel.channel_id)
        if entry is None:
            raise InvalidParameter(
                f"Channel {channel.channel_id} is not in the outbound session config of this interaction "
                f"(_umsOutboundSessionConfig, or the option whatsappsession.outbound-session-config): "
                f"{', '.join(sorted(listed)) or 'none is configured'}.", field="channel",
            )
        if entry.business_id and entry.business_id.lstrip("+") != channel.business_id.lstrip("+"):
            raise InvalidParameter(
                f"The outbound session config names business id {entry.business_id} for {channel.channel_id}, "
                f"whose business id is {channel.business_id}.", field="channel",
            )
    contact = current.contact
    client_id = _client_id_on(channel, contact, current)
    queue = current.queue if channel.pk == current.channel_id else channel_inbound_route(channel=channel)
    if not queue:
        raise InvalidParameter(f"Channel {channel.channel_id} has no inbound-route-by-call for the new session.",
                               field="channel")
    user_data = {
        **hub_driver_attributes(channel=channel, client_id=client_id, business_id=business_id),
        "GCTI_Chat_SubmitAsOutbound": "true",
        "OriginalInteractionId": current.pk,
    }
    if OUTBOUND_SESSION_CONFIG_ATTRIBUTE in (current.user_data or {}):
        user_data[OUTBOUND_SESSION_CONFIG_ATTRIBUTE] = current.user_data[OUTBOUND_SESSION_CONFIG_ATTRIBUTE]
    now = timezone.now()
    interaction = interaction_new(channel=channel, contact=contact, client_id=client_id, queue=queue,
                                  outbound=True, user_data=user_data, now=now)
    interaction.state = InteractionState.ACTIVE  # an agent holds it from the start
    if agent is not None:
        interaction_hold_new(interaction=interaction, agent=agent)
    window_open = True
    if window_applies(channel):
        closes_at = customer_windows_close_at(
            channel=channel, contact_ids=[contact.pk], minutes=window_minutes_for_session(interaction=interaction)
        ).get(contact.pk)
        window_open = is_open(closes_at, now)
    payload, sent_as = agent_content(interaction=interaction, window_open=window_open, text=text,
                                     standard_response_id=standard_response_id, fields=fields,
                                     header_attachment=header_attachment)
    with transaction.atomic():
        interaction.save(force_insert=True)
        message = message_queue_outbound(interaction=interaction, payload=payload, trace_id=trace_id)
    return NewSession(interaction, message, sent_as)
