"""Agent messages on an interaction, with the WhatsApp rules: the size limit
(`whatsappsession.max-text-message-size`, bytes of UTF-8), the 24-hour window
from the customer's last message, and automatic notifications outside it."""

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from channels_app.choices import ContentType, MediaType
from channels_app.errors import Conflict, InvalidParameter, NotFound
from channels_app.models import Interaction, InteractionState, Message, StandardResponse
from channels_app.options_catalog import IW
from channels_app.services.email import email_payload, text_limit
from channels_app.services.interactions import message_queue_outbound
from channels_app.services.media import attachments_for_sending, location_payload, media_object
from channels_app.services.options import option_value
from channels_app.services.standard_responses import standard_response_render

WHATSAPP_WINDOW_MINUTES = 24 * 60
# Content that is itself an approved template may be sent at any time.
NOTIFICATION_TYPES = {ContentType.NOTIFICATION, ContentType.RICH_MEDIA}
# "Reply Buttons or List Messages cannot be used as notifications."
INTERACTIVE_TYPES = {ContentType.REPLY_BUTTONS, ContentType.LIST}


def customer_window_closes_at(*, interaction: Interaction) -> datetime | None:
    """End of the free-message window: `whatsappsession.free-msg-timespan`
    minutes (when monitoring is on; else WhatsApp's 24 hours) after the
    customer's last message on this channel, in any of their sessions."""
    last = Interaction.objects.filter(channel_id=interaction.channel_id, client_id=interaction.client_id).aggregate(
        last=Max("last_customer_message_at")
    )["last"]
    if last is None:
        return None
    channel = interaction.channel
    monitoring = option_value(section=IW, name="whatsappsession.enable-free-msg-timespan-monitoring", channel=channel)
    minutes = (
        option_value(section=IW, name="whatsappsession.free-msg-timespan", channel=channel)
        if monitoring else WHATSAPP_WINDOW_MINUTES
    )
    return last + timedelta(minutes=minutes)


def _window_open(interaction: Interaction, now: datetime) -> bool:
    closes_at = customer_window_closes_at(interaction=interaction)
    return closes_at is not None and now < closes_at


def _default_notification(interaction: Interaction, text: str) -> dict | None:
    """The agent's text inside the default notification template ({{1}}), when configured."""
    channel = interaction.channel
    if not option_value(section=IW, name="whatsappsession.enable-free-msg-timespan-monitoring", channel=channel):
        return None
    template_text = option_value(section=IW, name="whatsappsession.default-notification-text", channel=channel)
    template_id = option_value(section=IW, name="whatsappsession.default-notification-id", channel=channel)
    if not template_text or not template_id:
        return None
    language = option_value(section=IW, name="whatsappsession.default-notification-language", channel=channel)
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


def agent_message_send(
    *,
    interaction_id: str,
    text: str | None = None,
    standard_response_id: str | None = None,
    fields: dict | None = None,
    trace_id: str = "",
    attachment_ids: list[int] | None = None,
    location: dict | None = None,
) -> Message:
    """Queue an agent's message (plain text, a standard response or a location, with files of
    `POST /api/attachments/` after it) on an open interaction."""
    now = timezone.now()
    with transaction.atomic():
        interaction = (
            Interaction.objects.select_for_update(of=("self",))
            .select_related("channel")
            .filter(pk=interaction_id)
            .first()
        )
        if interaction is None:
            raise NotFound(f"Unknown interaction {interaction_id!r}.", field="id")
        if interaction.state == InteractionState.ENDED:
            raise Conflict("The session has ended; start a new one (InviteToChat).", field="id")
        whatsapp = interaction.channel.media_type == MediaType.WHATSAPP
        window_open = not whatsapp or _window_open(interaction, now)
        if standard_response_id:
            response = StandardResponse.objects.filter(pk=standard_response_id).first()
            if response is None:
                raise InvalidParameter(f"Unknown standard response {standard_response_id!r}.",
                                       field="standard_response_id")
            rendered = standard_response_render(response=response, fields=fields)
            payload = rendered.payload
            _check_size(interaction, str(payload.get("text", "")), "standard_response_id")
            if not window_open:
                if response.content_type in INTERACTIVE_TYPES:
                    raise Conflict(
                        "Reply buttons and list messages can only be sent within 24 hours of the customer's last "
                        "message.", field="standard_response_id",
                    )
                if response.content_type not in NOTIFICATION_TYPES:
                    payload = _outside_window(interaction, str(payload.get("text", "")), "standard_response_id")
        elif location is not None:
            payload = location_payload(location)
            if not window_open:
                raise Conflict("The WhatsApp 24-hour window has closed: only notifications can be sent.",
                               field="location")
        else:
            text = text or ""
            if not text.strip() and not attachment_ids:
                raise InvalidParameter("The message text is empty.", field="text")
            _check_size(interaction, text, "text")
            payload = {"type": "Text", "text": text}
            if not window_open:
                payload = _outside_window(interaction, text, "text")
        if attachment_ids:
            if not window_open:
                raise Conflict("The WhatsApp 24-hour window has closed: files cannot be sent.", field="attachments")
            files = attachments_for_sending(channel=interaction.channel, ids=attachment_ids)
            payload = {**payload, "attachments": [*payload.get("attachments", ()), *map(media_object, files)]}
        if interaction.channel.media_type == MediaType.EMAIL:
            payload = email_payload(interaction=interaction, payload=payload)
        if interaction.state == InteractionState.QUEUED:
            interaction.state = InteractionState.ACTIVE
            interaction.save(update_fields=["state"])
        return message_queue_outbound(interaction=interaction, payload=payload, trace_id=trace_id)


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
