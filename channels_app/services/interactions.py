"""Interactions (chat sessions) and their messages: creation, hand-over to the
channel's transport, receipts, customer messages and the end of a session."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, cached_property

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from channels_app import options_catalog
from channels_app.bulk import copy_insert
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
from channels_app.models.conversations import generate_interaction_id, generate_message_id
from channels_app.prepared import execute_prepared
from channels_app.services.agent_events import (
    MESSAGE,
    WATCHER_EVENTS_CTE,
    WATCHER_EVENTS_NOTIFY,
    agent_events_prune,
    message_data,
    message_event,
    watcher_events_params,
)
from channels_app.services.contacts import contact_key_sql
from channels_app.services.deliveries import DISPATCHER_CHANNEL, deliveries_create
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
    copy_insert(Message, messages + following if following else messages)
    deliveries = deliveries_create(messages=messages, publish=publish, claim=not publish)
    if traffic.isEnabledFor(logging.INFO):
        for message in messages:
            traffic.info("Message %s queued.", message.pk, extra=message_fields(message))
    if followers:
        follower_deliveries_create(deliveries=deliveries, followers=followers)
    return deliveries


def message_queue_outbound(*, interaction: Interaction, payload: dict, trace_id: str = "",
                           activate: bool = False) -> Message:
    """One outgoing message of an ongoing interaction (an agent's), published after commit. With `activate`
    the interaction becomes active (an agent answered a queued one). On PostgreSQL a message without files is
    one statement (OUTBOUND_MESSAGE_SQL)."""
    message = message_new_outbound(interaction=interaction, payload=payload, trace_id=trace_id)
    if activate:
        interaction.state = InteractionState.ACTIVE
    # files wait on their message (followers), and a held interaction's event then carries them: the ORM's path
    if connection.vendor == "postgresql" and "attachments" not in payload and (
            interaction.assigned_to_id is None or message_media(message) is None):
        _outbound_message_store(interaction, message, activate)
        return message
    if activate:
        interaction.save(update_fields=["state"])
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
    (IntegrityError), for callers that then try again with it.

    On PostgreSQL a message to an open interaction (the common case) is one statement
    (CUSTOMER_MESSAGE_TO_OPEN_INTERACTION_SQL: the same rules as `_customer_message_rules`, in SQL), and a
    new customer's three (their contact, then their interaction with the message: `_rows_insert`)."""
    if channel_message_id and look_for_duplicate:
        existing = Message.objects.filter(channel=channel, channel_message_id=channel_message_id).first()
        if existing is not None:
            return existing, False
    received = CustomerMessage(
        channel=channel, client_id=client_id, text=text, channel_message_id=channel_message_id, nickname=nickname,
        origin_time=origin_time, trace_id=trace_id, extra_payload=extra_payload or {}, now=timezone.now(),
    )
    if connection.vendor == "postgresql":
        interaction, message = _customer_message_store_postgresql(received)
    else:
        interaction, message = _customer_message_store(received)
    # to the agent who holds it, and its conference (a location with its map link; files follow: media.py)
    message_event(message=message, interaction=interaction, media=message_media(message))
    # STOP / START (API.md "Opt-out"): a stop keyword is answered with the confirmation text.
    if opt_out_keywords_apply(message=message, interaction=interaction) == OPTED_OUT:
        if confirmation := opt_out_confirmation(channel=channel):
            message_queue_outbound(interaction=interaction, payload={"type": "Text", "text": confirmation})
    return message, True


@dataclass(frozen=True)
class CustomerMessage:
    """A customer message being stored (`customer_message_receive`'s arguments) and what follows from them alone."""

    channel: Channel
    client_id: str
    text: str
    channel_message_id: str
    nickname: str
    origin_time: datetime | None
    trace_id: str
    extra_payload: dict
    now: datetime

    @property
    def properties(self) -> dict:
        """The contact properties the message carries."""
        return {"_msg_ProfileNickname": self.nickname} if self.nickname else {}

    @property
    def sent_at(self) -> datetime:
        return self.origin_time or self.now

    @property
    def window_from(self) -> datetime:
        """The 24-hour window counts from the customer's last message, but never from beyond its arrival: a
        `channel.time` in the future (a wrong clock, or a forged one) would hold the window open past 24 hours.
        Also the contact's last message time (`contact_last_message_moved`)."""
        return min(self.sent_at, self.now)

    def user_data(self) -> dict:
        """The `_umsMsg*` attributes of the message, attached to its interaction."""
        return {
            "_umsMsgType": "text",
            "_umsMsgId": self.channel_message_id,
            "_umsMsgOriginTime": self.sent_at.isoformat(),
            # The spec's "Text of message", for routing; the message holds the whole text, which is not
            # copied here (a customer text may be up to MAX_INBOUND_TEXT_BYTES).
            "_umsMsgPlainText": self.text[:USER_DATA_TEXT_CHARACTERS],
        }

    def subject(self) -> str:
        return _subject_of(self.channel, self.text, self.extra_payload)

    def message(self, interaction: Interaction | None) -> Message:
        """The message as a model object, for the ORM to save (`_customer_message_store`)."""
        return Message(
            interaction=interaction,
            channel=self.channel,
            direction=MessageDirection.INBOUND,
            text=self.text,
            payload={"type": "Text", "text": self.text, **self.extra_payload},
            status=MessageStatus.RECEIVED,
            channel_message_id=self.channel_message_id,
            trace_id=self.trace_id,
            origin_time=self.origin_time,
        )

    @cached_property
    def message_row(self) -> dict:
        """The message's row, but for its interaction (Message's columns by attname, Python values), as the ORM
        would write `message()`: its defaults (a time-ordered id, no reasons, no external id, neither sent nor
        delivered), and auto_now_add and auto_now as the moment the message was received. Made once per message
        (one id however many times the statements are tried) and without a model object: a Message built, then
        walked field by field through pre_save and get_db_prep_save, was 14% of a /nexus request's profile
        (docs/PERFORMANCE.md). tests/test_customer_message_statements.py holds it to the ORM's row, column by
        column."""
        return {
            "id": generate_message_id(), "channel_id": self.channel.pk, "direction": MessageDirection.INBOUND,
            "text": self.text, "payload": {"type": "Text", "text": self.text, **self.extra_payload},
            "status": MessageStatus.RECEIVED, "reasons": [], "external_id": "",
            "channel_message_id": self.channel_message_id, "trace_id": self.trace_id,
            "origin_time": self.origin_time, "created_at": self.now, "updated_at": self.now, "sent_at": None,
            "delivered_at": None,
        }


def _customer_message_rules(interaction: Interaction, received: CustomerMessage) -> list[str]:
    """What a customer message changes on its interaction (not saved): the `_umsMsg*` user data, the `Subject`
    of the first message that has one, the 24-hour window, the last activity, an invitation's session made
    active, and routing (a queue routed by the server: the customer's first message, or a reply to an invitation,
    puts the interaction nobody holds in its queue, to be offered to an agent: services.routing). The fields
    changed. CUSTOMER_MESSAGE_TO_OPEN_INTERACTION_SQL is the same, in SQL."""
    interaction.user_data.update(received.user_data())
    if "Subject" not in interaction.user_data and (subject := received.subject()):
        interaction.user_data["Subject"] = subject
    interaction.last_customer_message_at = max(filter(None, [interaction.last_customer_message_at,
                                                             received.window_from]))
    interaction.last_activity_at = received.now
    if interaction.state == InteractionState.QUEUED and interaction.type == InteractionType.OUTBOUND:
        interaction.state = InteractionState.ACTIVE
    routed = interaction_enter_queue(interaction=interaction, now=received.now)
    return ["user_data", "last_customer_message_at", "last_activity_at", "state", *routed]


def _interaction_new_inbound(received: CustomerMessage, contact: Contact) -> Interaction:
    """The interaction a customer message opens (not saved)."""
    from channels_app.services.channels import channel_inbound_route

    channel = received.channel
    return interaction_new(
        channel=channel,
        contact=contact,
        client_id=received.client_id,
        queue=channel_inbound_route(channel=channel),
        outbound=False,
        user_data=hub_driver_attributes(
            channel=channel, client_id=received.client_id, business_id=channel.business_id,
            nickname=received.nickname,
        ),
        now=received.now,
    )


def _customer_message_store(received: CustomerMessage) -> tuple[Interaction, Message]:
    """The interaction (opened or continued) and the message, with the ORM (SQLite, the embedded default)."""
    from channels_app.services.contacts import contact_identify, contact_last_message_moved

    channel = received.channel
    contact = contact_identify(channel=channel, client_id=received.client_id, properties=received.properties)
    # By contact, not by the raw client id: "+15556667777" and "15556667777" are one customer.
    interaction = (
        Interaction.objects.select_for_update()
        .filter(channel=channel, contact=contact)
        .exclude(state=InteractionState.ENDED)
        .order_by("-created_at")
        .first()
    )
    if interaction is None:
        interaction = _interaction_new_inbound(received, contact)
        _customer_message_rules(interaction, received)
        interaction.save(force_insert=True)
    else:
        interaction.save(update_fields=_customer_message_rules(interaction, received))
    contact_last_message_moved(contact=contact, at=received.window_from)
    message = received.message(interaction)
    message.save(force_insert=True)
    return interaction, message


def _customer_message_store_postgresql(received: CustomerMessage) -> tuple[Interaction, Message]:
    """`_customer_message_store` in fewer statements: to an open interaction, one
    (CUSTOMER_MESSAGE_TO_OPEN_INTERACTION_SQL); for a new customer, their contact, then the interaction and the
    message in one (`_rows_insert`). Two messages of one customer at once make one interaction: for a new customer
    the second one's contact insert waits for the first's commit, for a returning one (no open interaction) the
    lock on their contact; then it finds the first's interaction."""
    from channels_app.services.contacts import (
        contact_key,
        contact_last_message_moved,
        contact_new,
        contact_properties_keep,
    )

    key = contact_key(channel=received.channel, client_id=received.client_id)
    contact, interaction, message = _customer_message_to_open_interaction(received, key)
    if contact is None:
        contact = contact_new(channel=received.channel, key=key, client_id=received.client_id,
                              properties=received.properties, last_message_at=received.window_from)
        if contact is None:  # created by a concurrent request, committed: it may have opened the interaction too
            contact, interaction, message = _customer_message_to_open_interaction(received, key)
    elif message is None:
        # A returning customer with no open interaction: their contact locked, then looked at again, so that two
        # of their messages at once open one interaction (the second finds the first's, committed, and continues it).
        list(Contact.objects.select_for_update().filter(pk=contact.pk).values_list("pk"))
        contact, interaction, message = _customer_message_to_open_interaction(received, key)
    contact_properties_keep(contact=contact, properties=received.properties)
    if message is not None:
        routed = interaction_enter_queue(interaction=interaction, now=received.now)
        if routed:  # rare: a reply to an invitation, on a queue routed by the server
            Interaction.objects.filter(pk=interaction.pk).update(
                routing_queue_id=interaction.routing_queue_id, queued_at=interaction.queued_at)
        return interaction, message
    interaction = _interaction_new_inbound(received, contact)
    _customer_message_rules(interaction, received)
    row = received.message_row
    _rows_insert([(Interaction, _field_values(interaction)), (Message, _message_values(row, interaction.pk))])
    interaction._state.adding, interaction._state.db = False, connection.alias
    contact_last_message_moved(contact=contact, at=received.window_from)
    return interaction, _message_stored(row, interaction)


def _columns(alias: str, fields) -> str:
    return ", ".join(f'{alias}."{field.column}"' for field in fields)


_CHANNEL_FIELDS = Channel._meta.concrete_fields
_CONTACT_FIELDS = Contact._meta.concrete_fields
_INTERACTION_FIELDS = Interaction._meta.concrete_fields
_MESSAGE_FIELDS = Message._meta.concrete_fields
_DELIVERY_FIELDS = [field for field in Delivery._meta.concrete_fields if not field.primary_key]
_LAST_ACTIVITY_STEP = timedelta(seconds=1)  # last_activity_at is moved only when it is this much behind
# An agent's message without files, in one statement (`messages_queue_outbound` and `message_event`'s rules, in
# SQL): the message; its delivery, due now; the interaction made active and its last activity moved, when either
# is due; for an interaction someone holds, the message event of its agent and conference (events_add's rows,
# deduplicated and in the order of their users); the NOTIFYs of deliveries_due and of the events, sent at commit
# as before. Foreign keys are checked at commit (Django's are deferred), so the delivery may name the message
# inserted beside it.
OUTBOUND_MESSAGE_SQL = f"""
WITH message AS (
    INSERT INTO {Message._meta.db_table} ({", ".join(f'"{field.column}"' for field in _MESSAGE_FIELDS)})
    VALUES ({", ".join(f"%(message_{field.attname})s" for field in _MESSAGE_FIELDS)})
), delivery AS (
    INSERT INTO {Delivery._meta.db_table} ({", ".join(f'"{field.column}"' for field in _DELIVERY_FIELDS)})
    VALUES ({", ".join(f"%(delivery_{field.attname})s" for field in _DELIVERY_FIELDS)})
    RETURNING id
), touched AS (
    UPDATE {Interaction._meta.db_table} SET
        state = CASE WHEN %(activate)s THEN %(active)s ELSE state END,
        last_activity_at = CASE WHEN %(touch)s THEN %(message_created_at)s ELSE last_activity_at END
    WHERE id = %(interaction)s AND (%(activate)s OR %(touch)s)
), {WATCHER_EVENTS_CTE}
SELECT (SELECT id FROM delivery), pg_notify(%(deliveries_channel)s, ''), {WATCHER_EVENTS_NOTIFY}"""


def _outbound_message_store(interaction: Interaction, message: Message, activate: bool) -> None:
    """OUTBOUND_MESSAGE_SQL for `message` (new, without files) on `interaction` (locked by the caller)."""
    params = {f"message_{field.attname}": field.get_db_prep_save(field.pre_save(message, True), connection)
              for field in _MESSAGE_FIELDS}
    now = timezone.now()
    delivery = Delivery(message=message, channel_id=message.channel_id, next_attempt_at=now, published_at=now)
    params.update({f"delivery_{field.attname}": field.get_db_prep_save(field.pre_save(delivery, True), connection)
                   for field in _DELIVERY_FIELDS})
    held = interaction.assigned_to_id is not None
    params.update(watcher_events_params(interaction=interaction, kind=MESSAGE,
                                        data=message_data(message) if held else {}))
    params.update(activate=activate, active=InteractionState.ACTIVE, deliveries_channel=DISPATCHER_CHANNEL,
                  touch=message.created_at - interaction.last_activity_at > _LAST_ACTIVITY_STEP)
    delivery.pk = execute_prepared(OUTBOUND_MESSAGE_SQL, params)[0][0]  # message.delivery, as bulk_create leaves it
    delivery._state.adding = False
    if traffic.isEnabledFor(logging.INFO):
        traffic.info("Message %s queued.", message.pk, extra=message_fields(message))


def _column(model, name: str) -> str:
    return model._meta.get_field(name).column


# An interaction with its channel and contact, the interaction locked, in the caller's tenants (`restrict`'s
# condition for interactions): the ORM's build of the same statement (select_for_update, select_related, the
# tenants' filter, the three instances) cost an agent's message more than PostgreSQL's work on it.
INTERACTION_LOCKED_SQL = f"""
SELECT {_columns("interaction", _INTERACTION_FIELDS)}, {_columns("channel", _CHANNEL_FIELDS)},
       {_columns("contact", _CONTACT_FIELDS)}
FROM {Interaction._meta.db_table} AS interaction
JOIN {Channel._meta.db_table} AS channel ON channel.id = interaction."{_column(Interaction, "channel")}"
JOIN {Contact._meta.db_table} AS contact ON contact.id = interaction."{_column(Interaction, "contact")}"
WHERE interaction.id = %(interaction)s {{tenants}}
FOR UPDATE OF interaction"""
_INTERACTION_LOCKED_SQL_IN_EVERY_TENANT = INTERACTION_LOCKED_SQL.format(tenants="")
_INTERACTION_LOCKED_SQL_IN_TENANTS = INTERACTION_LOCKED_SQL.format(
    tenants=f'AND channel."{_column(Channel, "tenant")}" = ANY(%(tenants)s)')


def interaction_locked(*, interaction_id: str, tenant_ids: frozenset[int] | None) -> Interaction | None:
    """The interaction `interaction_id` with its channel and contact, locked until the transaction ends (FOR
    UPDATE OF the interaction); None when there is none in `tenant_ids` (the caller's tenants:
    selectors.tenant_ids_for; None for every tenant). On PostgreSQL one statement written out
    (INTERACTION_LOCKED_SQL); elsewhere the ORM's."""
    if tenant_ids is not None and not tenant_ids:
        return None  # a member of no tenant sees nothing (the ORM sends no statement either)
    if connection.vendor != "postgresql":
        found = Interaction.objects.select_for_update(of=("self",)).select_related("channel", "contact").filter(
            pk=interaction_id)
        if tenant_ids is not None:
            found = found.filter(channel__tenant__in=tenant_ids)
        return next(iter(found[:1]), None)
    if tenant_ids is None:
        rows = execute_prepared(_INTERACTION_LOCKED_SQL_IN_EVERY_TENANT, {"interaction": interaction_id})
    else:
        rows = execute_prepared(_INTERACTION_LOCKED_SQL_IN_TENANTS,
                                {"interaction": interaction_id, "tenants": sorted(tenant_ids)})
    if not rows:
        return None
    (row,) = rows
    interaction_end, channel_end = len(_INTERACTION_FIELDS), len(_INTERACTION_FIELDS) + len(_CHANNEL_FIELDS)
    interaction = _from_row(Interaction, row[:interaction_end])
    interaction.channel = _from_row(Channel, row[interaction_end:channel_end])
    interaction.contact = _from_row(Contact, row[channel_end:])
    return interaction


# A customer message to their open interaction, in one statement (`_customer_message_store`'s rules, in SQL):
# the contact by the key of `contact_identify` (each variant states its unique index's condition word for word,
# as services/contacts.py does); their open interaction on the channel, the latest, locked; on it the `_umsMsg*`
# user data, the `Subject` of the first message that has one, the 24-hour window (last_customer_message_at, never
# moved back), the last activity and an invitation's session made active (queued Outbound -> active); the message;
# the contact's last message time moved by `contact_last_message_moved`'s rule (LAST_MESSAGE_STEP). Its row: the
# contact (none: a new customer), the contact's moved last_message_at, the interaction as changed (none: no open
# interaction, and then nothing was written). Routing (`interaction_enter_queue`) is decided on the answer.
# The open interaction is found through the partial index interaction_open_by_contact, whose condition the query
# states with the same literal: a parameter there would keep a prepared statement's generic plan from using it.
# Its contact is a value (a sub-select), not a join: joined, a plan made without statistics (a new database, or
# autovacuum not yet come by) walked every interaction of the channel through interaction_open_by_client and
# matched the contact afterwards, which is every open conversation of the channel read for each message
# (docs/PERFORMANCE.md, "the history row profiled").
CUSTOMER_MESSAGE_TO_OPEN_INTERACTION_SQL = f"""
WITH contact AS (
    SELECT {_columns("contact", _CONTACT_FIELDS)} FROM {Contact._meta.db_table} AS contact
    WHERE contact.tenant_id = %(tenant)s AND {{contact_key}}
), open_interaction AS (
    SELECT interaction.id FROM {Interaction._meta.db_table} AS interaction
    WHERE interaction.contact_id = (SELECT id FROM contact) AND interaction.channel_id = %(channel)s
      AND NOT interaction.state = '{InteractionState.ENDED.value}'
    ORDER BY interaction.created_at DESC LIMIT 1 FOR UPDATE OF interaction
), continued AS (
    UPDATE {Interaction._meta.db_table} AS interaction SET
        user_data = interaction.user_data || %(user_data)s || CASE
            WHEN interaction.user_data ? 'Subject' OR %(subject)s = '' THEN '{{{{}}}}'::jsonb
            ELSE jsonb_build_object('Subject', %(subject)s::text) END,
        last_customer_message_at = GREATEST(interaction.last_customer_message_at, %(window_from)s),
        last_activity_at = %(now)s,
        state = CASE WHEN interaction.state = %(queued)s AND interaction.type = %(outbound)s THEN %(active)s
                     ELSE interaction.state END
    FROM open_interaction WHERE interaction.id = open_interaction.id
    RETURNING {_columns("interaction", _INTERACTION_FIELDS)}
), message AS (
    INSERT INTO {Message._meta.db_table} ({", ".join(f'"{field.column}"' for field in _MESSAGE_FIELDS)})
    SELECT {", ".join("continued.id" if field.name == "interaction" else f"%(message_{field.attname})s"
                      for field in _MESSAGE_FIELDS)} FROM continued
), contact_moved AS (
    UPDATE {Contact._meta.db_table} AS moved SET last_message_at = %(window_from)s FROM continued
    WHERE moved.id = continued.contact_id
      AND (moved.last_message_at IS NULL OR moved.last_message_at < %(last_message_before)s)
    RETURNING moved.last_message_at
)
SELECT {_columns("contact", _CONTACT_FIELDS)}, (SELECT last_message_at FROM contact_moved),
       {_columns("continued", _INTERACTION_FIELDS)}
FROM contact LEFT JOIN continued ON true"""
_CONTACT_KEY_SQL = {kind: contact_key_sql(kind, "%(key)s") for kind in ("phone", "client")}
_CUSTOMER_MESSAGE_SQL_BY_KEY = {kind: CUSTOMER_MESSAGE_TO_OPEN_INTERACTION_SQL.format(contact_key=condition)
                                for kind, condition in _CONTACT_KEY_SQL.items()}


def _customer_message_to_open_interaction(
    received: CustomerMessage, key: tuple[str, str]
) -> tuple[Contact | None, Interaction | None, Message | None]:
    """CUSTOMER_MESSAGE_TO_OPEN_INTERACTION_SQL: (contact, interaction, message), each None when not found (and
    then not written)."""
    from channels_app.services.contacts import LAST_MESSAGE_STEP

    kind, value = key
    row = received.message_row
    # The message's interaction is the statement's (the one it continues): no parameter.
    params = {name: column for name, column in zip(_MESSAGE_PARAMETERS, _message_values(row, None), strict=True)
              if name}
    params.update(
        tenant=received.channel.tenant_id, key=value, channel=received.channel.pk,
        user_data=_USER_DATA.get_db_prep_save(received.user_data(), connection), subject=received.subject(),
        window_from=received.window_from, now=received.now, queued=InteractionState.QUEUED,
        outbound=InteractionType.OUTBOUND, active=InteractionState.ACTIVE,
        last_message_before=received.window_from - LAST_MESSAGE_STEP,
    )
    rows = execute_prepared(_CUSTOMER_MESSAGE_SQL_BY_KEY[kind], params)
    if not rows:
        return None, None, None
    (returned,) = rows
    contact = _from_row(Contact, returned[:len(_CONTACT_FIELDS)])
    if (moved := returned[len(_CONTACT_FIELDS)]) is not None:
        contact.last_message_at = moved
    values = returned[len(_CONTACT_FIELDS) + 1:]
    if values[0] is None:  # no open interaction
        return contact, None, None
    interaction = _from_row(Interaction, values)
    interaction.channel, interaction.contact = received.channel, contact
    return contact, interaction, _message_stored(row, interaction)


_USER_DATA = Interaction._meta.get_field("user_data")
# Each column of a message: its attname, and its field when Django adapts its values (JSON), else None.
_MESSAGE_COLUMNS = [(field.attname, field if field.get_internal_type() == "JSONField" else None)
                    for field in _MESSAGE_FIELDS]
_MESSAGE_ATTNAMES = [attname for attname, _ in _MESSAGE_COLUMNS]
_MESSAGE_PARAMETERS = [None if attname == "interaction_id" else f"message_{attname}" for attname in _MESSAGE_ATTNAMES]


def _message_values(row: dict, interaction_id: str | None) -> list:
    """A message's row (`CustomerMessage.message_row`) in `interaction_id` as a statement's parameters, in
    _MESSAGE_FIELDS' order: the values as they are (psycopg adapts the strings, ids and aware times that Django's
    fields hand over unchanged), the JSON columns adapted by their field, as Django adapts them."""
    return [interaction_id if attname == "interaction_id" else row[attname] if json is None
            else json.get_db_prep_save(row[attname], connection) for attname, json in _MESSAGE_COLUMNS]


def _message_stored(row: dict, interaction: Interaction) -> Message:
    """The message of `row`, stored in `interaction`, as a model object read back from the database would be (its
    channel and interaction at hand), for the callers that read it."""
    message = Message.from_db(connection.alias, _MESSAGE_ATTNAMES,
                              [interaction.pk if attname == "interaction_id" else row[attname]
                               for attname in _MESSAGE_ATTNAMES])
    message.channel, message.interaction = interaction.channel, interaction
    return message


def _from_row(model, values):
    """A model instance from the raw values of its columns (its concrete fields' order), converted as the ORM
    converts them (JSON)."""
    attnames, converted = _row_reading(model)
    values = list(values)
    if len(values) != len(attnames):
        raise ValueError(f"{len(values)} values for the {len(attnames)} columns of {model.__name__}")
    for index, field in converted:
        if values[index] is not None:
            values[index] = field.from_db_value(values[index], field.cached_col, connection)
    return model.from_db(connection.alias, attnames, values)


@cache
def _row_reading(model) -> tuple[list[str], list[tuple[int, object]]]:
    """A model's column attnames, and the positions and fields the ORM converts when it reads them (JSON): found
    once per model rather than for each row."""
    fields = model._meta.concrete_fields
    return ([field.attname for field in fields],
            [(index, field) for index, field in enumerate(fields) if hasattr(field, "from_db_value")])


def _field_values(obj) -> list:
    """The values of a new model object's columns as the ORM writes them (defaults, pre_save, adapted)."""
    return [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in obj._meta.concrete_fields]


def _rows_insert(rows: list[tuple[type, list]]) -> None:
    """New rows of several tables in one statement (an INSERT, each of the others in a WITH before it): (model, the
    values of its columns as the statement's parameters); their primary keys are made by Python (Interaction,
    Message). Foreign keys between them are checked at commit (Django's are deferred)."""
    quote = connection.ops.quote_name
    inserts, params = [], []
    for model, values in rows:
        fields = model._meta.concrete_fields
        inserts.append(f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
                       f"VALUES ({', '.join(['%s'] * len(fields))})")
        params += values
    *first, last = inserts
    sql = (("WITH " + ", ".join(f"row{n} AS ({insert})" for n, insert in enumerate(first)) + " ")
           if first else "") + last
    with connection.cursor() as cursor:  # not prepared: no gain measured (docs/PERFORMANCE.md, issue 25)
        cursor.execute(sql, params)


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
    # The open interactions, in interaction_open_by_contact's words (NOT state = 'ended'): read through that partial
    # index, not the ended ones, and last_activity_at compared on their rows (in no index, so that a message's
    # update of it is HOT: models/conversations.py). Said as a list of the open states, the condition would also
    # match interaction_open_by_client's state column, and the planner read that index of every interaction too.
    open_ = Interaction.objects.exclude(state=InteractionState.ENDED)
    key = "session_options__session-shutdown-timeout"
    # A handful of distinct values (one per setting ever used), each ended with one UPDATE.
    kept = {value for value in open_.exclude(**{f"{key}__isnull": True})
            .values_list(key, flat=True).distinct().order_by() if isinstance(value, int)}
    for timeout in kept:
        idle = open_.filter(last_activity_at__lt=now - timedelta(seconds=timeout), **{key: timeout})
        ended += idle.update(state=InteractionState.ENDED, ended_at=now, end_reason="session-shutdown-timeout")
    for channel in Channel.objects.all():
        timeout = option_value(section=options_catalog.DMS, name="session-shutdown-timeout", channel=channel)
        idle = open_.filter(last_activity_at__lt=now - timedelta(seconds=timeout), channel=channel,
                            **{f"{key}__isnull": True})
        ended += idle.update(state=InteractionState.ENDED, ended_at=now, end_reason="session-shutdown-timeout")
    abandoned = Interaction.objects.filter(terminate_after_send=True, created_at__lt=now - ABANDONED_AFTER).exclude(
        state=InteractionState.ENDED
    )
    ended += abandoned.update(state=InteractionState.ENDED, ended_at=now, end_reason="abandoned (TerminateSessionFlag)")
    EarlyReceipt.objects.filter(received_at__lt=now - EARLY_RECEIPTS_KEPT).delete()
    agent_events_prune(now=now)  # the agents' events older than a stream may resume from
    return ended
