"""Interactions (chat sessions) and their messages: creation, hand-over to the
channel's transport, receipts, customer messages and the end of a session."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from channels_app import options_catalog
from channels_app.choices import MediaType
from channels_app.models import (
    Channel,
    Contact,
    Delivery,
    EarlyReceipt,
    Interaction,
    InteractionState,
    InteractionSubtype,
    InteractionType,
    Message,
    MessageDirection,
    MessageStatus,
)
from channels_app.models.conversations import generate_interaction_id
from channels_app.services.agent_events import agent_events_prune, message_event
from channels_app.services.deliveries import deliveries_create
from channels_app.services.media import follower_deliveries_create, message_media, outbound_followers
from channels_app.services.opt_out import OPTED_OUT, opt_out_confirmation, opt_out_keywords_apply
from channels_app.services.options import option_value, session_options_snapshot
from channels_app.services.routing import interaction_enter_queue, interaction_release
from channels_app.text_rules import one_line
from channels_app.traces import message_fields, traffic

# Interactions created with TerminateSessionFlag whose message never left are
# "occasional lost chats" (dms-invite-to-chat): ended after this long.
ABANDONED_AFTER = timedelta(minutes=15)
# A receipt for an id no message ever got is dropped after this.
EARLY_RECEIPTS_KEPT = timedelta(days=1)

USER_DATA_TEXT_CHARACTERS = 256  # of a customer text, kept in the interaction's user data (_umsMsgPlainText)


def hub_driver_attributes(*, channel: Channel, client_id: str, business_id: str, nickname: str = "") -> dict:
    """The attributes the WhatsApp Hub Driver adds to an interaction (WhatsApp guide); `Subject` is added by
    the first customer message (`customer_message_receive`)."""
    attributes = {
        "_umsInboundIxnSubmittedBy": settings.APPLICATION_NAME,
        "_umsChannel": channel.channel_id,
        "_umsMediaType": channel.media_type,
        "_umsMediaTypeChat": f"{channel.media_type}session",
        "_umsFromAddr": client_id,
        "_umsToAddr": business_id,
    }
    if channel.media_type in ("whatsapp", "sms"):
        attributes["PhoneNumber"] = client_id
    if nickname:
        attributes["_msg_ProfileNickname"] = nickname
    return attributes


def interaction_new(
    *,
    channel: Channel,
    contact: Contact,
    client_id: str,
    queue: str,
    outbound: bool,
    user_data: dict,
    terminate_after_send: bool = False,
    now: datetime | None = None,
) -> Interaction:
    """A new chat session, not saved yet; its id is also attached as
    `_umsChatSessionId`, as Chat Server does. The session-scoped option
    values of the channel are kept with it (`session_options`)."""
    interaction_id = generate_interaction_id()
    now = now or timezone.now()
    return Interaction(
        id=interaction_id,
        channel=channel,
        contact=contact,
        client_id=client_id,
        type=InteractionType.OUTBOUND if outbound else InteractionType.INBOUND,
        subtype=InteractionSubtype.OUTBOUND_NEW if outbound else InteractionSubtype.INBOUND_NEW,
        queue=queue,
        user_data={**user_data, "_umsChatSessionId": interaction_id},
        terminate_after_send=terminate_after_send,
        session_options=dict(session_options_snapshot(channel=channel)),
        created_at=now,
        last_activity_at=now,
    )


def interaction_field_values(*, interaction: Interaction, business_id: str = "") -> dict:
    """The `Interaction` object of field codes."""
    return {"Id": interaction.pk, "DateCreated": interaction.created_at.isoformat(),
            "FromAddress": business_id or interaction.user_data.get("_umsToAddr") or interaction.channel.business_id,
            "ToAddress": interaction.client_id}


def interaction_create(**kwargs) -> Interaction:
    """`interaction_new`, saved."""
    interaction = interaction_new(**kwargs)
    interaction.save(force_insert=True)
    return interaction


def message_new_outbound(*, interaction: Interaction, payload: dict, trace_id: str = "") -> Message:
    return Message(
        interaction=interaction,
        channel_id=interaction.channel_id,
        direction=MessageDirection.OUTBOUND,
        text=_text_of(payload),
        payload=payload,
        status=MessageStatus.QUEUED,
        trace_id=trace_id,
    )


def messages_queue_outbound(*, messages: list[Message], publish: bool = True) -> list[Delivery]:
    """Store outgoing messages (status queued) with their deliveries, returned
    in the same order: with `publish`, each is attempted through Celery once
    the transaction commits; without, the caller owns them and sends them
    (services.deliveries)."""
    # The spec's order: a message's attachments leave after it, one message each (services/media.py).
    followers = outbound_followers(messages) if any("attachments" in m.payload for m in messages) else None
    following = [m for chain in followers.values() for m in chain] if followers else []
    Message.objects.bulk_create(messages + following if following else messages)
    deliveries = deliveries_create(messages=messages, publish=publish, claim=not publish)
    if traffic.isEnabledFor(logging.INFO):
        for message in messages:
            traffic.info("Message %s queued.", message.pk, extra=message_fields(message))
    if followers:
        follower_deliveries_create(deliveries=deliveries, followers=followers)
    return deliveries


def message_queue_outbound(*, interaction: Interaction, payload: dict, trace_id: str = "") -> Message:
    """One outgoing message of an ongoing interaction (an agent's), published after commit."""
    message = message_new_outbound(interaction=interaction, payload=payload, trace_id=trace_id)
    messages_queue_outbound(messages=[message])
    # to the agent who holds it, and its conference (with its files or location, if any)
    message_event(message=message, interaction=interaction, media=message_media(message))
    if message.created_at - interaction.last_activity_at > timedelta(seconds=1):
        Interaction.objects.filter(pk=interaction.pk).update(last_activity_at=message.created_at)
    return message


def _text_of(payload: dict) -> str:
    """The message's text as the transcript shows it. An e-mail (services/email.py) carries its text in its
    parts: the plain one, else the HTML, as a customer's e-mail's text is read (parsing.py), not its subject."""
    if payload.get("type") == "Email":
        parts = {part.get("type"): part.get("text") for part in payload.get("content") or () if isinstance(part, dict)}
        return str(parts.get("text") or parts.get("html") or payload.get("subject") or "")
    return str(payload.get("text") or payload.get("subject") or "")


def interaction_end(*, interaction: Interaction, reason: str, disposition: str = "") -> Interaction:
    if interaction.state == InteractionState.ENDED:
        return interaction
    interaction.state = InteractionState.ENDED
    interaction.ended_at = timezone.now()
    interaction.end_reason = reason
    interaction.disposition = disposition
    interaction.save(update_fields=["state", "ended_at", "end_reason", "disposition"])
    interaction_release(interaction=interaction)  # offers withdrawn, the agent's capacity free again
    return interaction


def disposition_values() -> list[str]:
    """The value names of the Disposition Code business attribute (seeded; its values are the administrator's)."""
    from channels_app.choices import BusinessAttributeType
    from channels_app.models import BusinessAttributeValue

    return list(
        BusinessAttributeValue.objects.filter(attribute__type=BusinessAttributeType.DISPOSITION_CODE)
        .order_by("attribute__name", "order", "name")
        .values_list("name", flat=True)
    )


def interaction_close(*, interaction_id: str, disposition: str = "", ended_by: str = "") -> Interaction:
    """The agent's Done (WhatsApp guide, "Handle a WhatsApp Interaction": "click Done to stop the current
    interaction ... You can also set a disposition code"): the session ends with the disposition, a value
    of the Disposition Code business attribute (InvalidParameter naming `disposition` otherwise); a session
    that has already ended is a Conflict."""
    from channels_app.errors import Conflict, InvalidParameter, NotFound

    if disposition and disposition not in disposition_values():
        raise InvalidParameter(
            f"{disposition!r} is not a value of the Disposition Code business attribute.", field="disposition"
        )
    with transaction.atomic():
        interaction = Interaction.objects.select_for_update(of=("self",)).select_related("channel").filter(
            pk=interaction_id
        ).first()
        if interaction is None:
            raise NotFound(f"Unknown interaction {interaction_id!r}.", field="id")
        if interaction.state == InteractionState.ENDED:
            raise Conflict("The session has already ended.", field="id")
        return interaction_end(
            interaction=interaction, reason=f"ended by {ended_by}" if ended_by else "ended by the agent",
            disposition=disposition,
        )


@transaction.atomic(savepoint=False)  # all or nothing with the request that carries it: no savepoint needed
def customer_message_receive(
    *,
    channel: Channel,
    client_id: str,
    text: str,
    channel_message_id: str = "",
    nickname: str = "",
    origin_time: datetime | None = None,
    trace_id: str = "",
    extra_payload: dict | None = None,
    look_for_duplicate: bool = True,
) -> tuple[Message, bool]:
    """A customer's message: it opens or continues the customer's interaction on
    the channel and records the hub driver attributes. Returns (message,
    created); a `channel_message_id` already received returns the stored one.
    Without `look_for_duplicate` a duplicate is left to the unique constraint
    (IntegrityError), for callers that then try again with it."""
    from channels_app.services.channels import channel_inbound_route
    from channels_app.services.contacts import contact_identify, contact_last_message_moved

    if channel_message_id and look_for_duplicate:
        existing = Message.objects.filter(channel=channel, channel_message_id=channel_message_id).first()
        if existing is not None:
            return existing, False
    now = timezone.now()
    properties = {"_msg_ProfileNickname": nickname} if nickname else {}
    contact = contact_identify(channel=channel, client_id=client_id, properties=properties)
    # By contact, not by the raw client id: "+15556667777" and "15556667777" are one customer.
    interaction = (
        Interaction.objects.select_for_update()
        .filter(channel=channel, contact=contact)
        .exclude(state=InteractionState.ENDED)
        .order_by("-created_at")
        .first()
    )
    if interaction is None:
        interaction = interaction_create(
            channel=channel,
            contact=contact,
            client_id=client_id,
            queue=channel_inbound_route(channel=channel),
            outbound=False,
            user_data=hub_driver_attributes(
                channel=channel, client_id=client_id, business_id=channel.business_id, nickname=nickname
            ),
        )
    sent_at = origin_time or now
    interaction.user_data.update(
        {
            "_umsMsgType": "text",
            "_umsMsgId": channel_message_id,
            "_umsMsgOriginTime": sent_at.isoformat(),
            # The spec's "Text of message", for routing; the message holds the whole text, which is not
            # copied here (a customer text may be up to MAX_INBOUND_TEXT_BYTES).
            "_umsMsgPlainText": text[:USER_DATA_TEXT_CHARACTERS],
        }
    )
    if "Subject" not in interaction.user_data and (subject := _subject_of(channel, text, extra_payload)):
        interaction.user_data["Subject"] = subject
    # The 24-hour window counts from the customer's last message, but never from beyond its arrival: a
    # `channel.time` in the future (a wrong clock, or a forged one) would hold the window open past 24 hours.
    interaction.last_customer_message_at = max(
        filter(None, [interaction.last_customer_message_at, min(sent_at, now)])
    )
    contact_last_message_moved(contact=contact, at=min(sent_at, now))
    interaction.last_activity_at = now
    if interaction.state == InteractionState.QUEUED and interaction.type == InteractionType.OUTBOUND:
        interaction.state = InteractionState.ACTIVE
    # A queue routed by the server: the customer's first message, or a reply to an invitation, puts the
    # interaction nobody holds in its queue, to be offered to an agent (services.routing).
    routed = interaction_enter_queue(interaction=interaction, now=now)
    interaction.save(update_fields=["user_data", "last_customer_message_at", "last_activity_at", "state", *routed])
    message = Message.objects.create(
        interaction=interaction,
        channel=channel,
        direction=MessageDirection.INBOUND,
        text=text,
        payload={"type": "Text", "text": text, **(extra_payload or {})},
        status=MessageStatus.RECEIVED,
        channel_message_id=channel_message_id,
        trace_id=trace_id,
        origin_time=origin_time,
    )
    # to the agent who holds it, and its conference (a location with its map link; files follow: media.py)
    message_event(message=message, interaction=interaction, media=message_media(message))
    # STOP / START (API.md "Opt-out"): a stop keyword is answered with the confirmation text.
    if opt_out_keywords_apply(message=message, interaction=interaction) == OPTED_OUT:
        if confirmation := opt_out_confirmation(channel=channel):
            message_queue_outbound(interaction=interaction, payload={"type": "Text", "text": confirmation})
    return message, True


def _subject_of(channel: Channel, text: str, extra_payload: dict | None) -> str:
    """The `Subject` hub attribute ("Subject of message", WhatsApp guide), set by the first customer message
    that has one: an e-mail's subject; on other media the first line of the text (a message of files only
    has none), at most USER_DATA_TEXT_CHARACTERS. Always one line: it becomes a reply's subject."""
    if subject := (extra_payload or {}).get("subject"):
        return one_line(str(subject))[:USER_DATA_TEXT_CHARACTERS]
    if channel.media_type == MediaType.EMAIL:
        return ""  # an e-mail without a subject: its text is no subject
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first_line[:USER_DATA_TEXT_CHARACTERS]


def sessions_expire(*, now: datetime | None = None) -> int:
    """End sessions idle longer than their `session-shutdown-timeout` (the
    value kept when each was created: a change takes effect "when the next
    chat session is created"; the channel's current value for sessions
    created before values were kept), and sessions created with
    TerminateSessionFlag whose message never left."""
    now = now or timezone.now()
    ended = 0
    open_states = [InteractionState.QUEUED, InteractionState.ACTIVE]
    key = "session_options__session-shutdown-timeout"
    # A handful of distinct values (one per setting ever used), each ended with one UPDATE.
    kept = {value for value in Interaction.objects.filter(state__in=open_states).exclude(**{f"{key}__isnull": True})
            .values_list(key, flat=True).distinct().order_by() if isinstance(value, int)}
    for timeout in kept:
        idle = Interaction.objects.filter(  # state first: the interaction_idle index
            state__in=open_states, last_activity_at__lt=now - timedelta(seconds=timeout), **{key: timeout},
        )
        ended += idle.update(state=InteractionState.ENDED, ended_at=now, end_reason="session-shutdown-timeout")
    for channel in Channel.objects.all():
        timeout = option_value(section=options_catalog.DMS, name="session-shutdown-timeout", channel=channel)
        idle = Interaction.objects.filter(
            state__in=open_states, last_activity_at__lt=now - timedelta(seconds=timeout), channel=channel,
            **{f"{key}__isnull": True},
        )
        ended += idle.update(state=InteractionState.ENDED, ended_at=now, end_reason="session-shutdown-timeout")
    abandoned = Interaction.objects.filter(terminate_after_send=True, created_at__lt=now - ABANDONED_AFTER).exclude(
        state=InteractionState.ENDED
    )
    ended += abandoned.update(state=InteractionState.ENDED, ended_at=now, end_reason="abandoned (TerminateSessionFlag)")
    EarlyReceipt.objects.filter(received_at__lt=now - EARLY_RECEIPTS_KEPT).delete()
    agent_events_prune(now=now)  # the agents' events older than a stream may resume from
    return ended
