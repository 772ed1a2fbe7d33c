"""The hub simulator's side of a sent message (the `simulator` transport): a
`Delivered` receipt and, when configured, an automatic customer reply, through
the same services a real third party's requests reach."""

import logging

from channels_app import options_catalog
from channels_app.models import Message
from channels_app.services.interactions import customer_message_receive
from channels_app.services.options import option_value
from channels_app.services.receipts import receipt_apply

logger = logging.getLogger(__name__)


def simulator_emit_all(*, message_ids: list[str]) -> None:
    """`simulator_emit` for each message, each on its own: one that fails leaves the others' receipts and replies
    as a task each left them."""
    for message_id in message_ids:
        try:
            simulator_emit(message_id=message_id)
        except Exception:
            logger.exception("The simulator's receipt or reply for message %s failed", message_id)


def simulator_emit(*, message_id: str) -> None:
    message = Message.objects.select_related("channel", "interaction").filter(pk=message_id).first()
    if message is None or not message.external_id:
        return
    channel = message.channel
    if option_value(section=options_catalog.CHANNEL, name="simulator-send-receipts", channel=channel):
        receipt_apply(channel=channel, external_id=message.external_id, status="Delivered")
    reply = option_value(section=options_catalog.CHANNEL, name="simulator-auto-reply", channel=channel)
    if reply and message.interaction.state != "ended":
        customer_message_receive(
            channel=channel,
            client_id=message.interaction.client_id,
            text=reply,
            channel_message_id=f"sim-reply-{message.pk}",
            nickname="Simulated customer",
        )
