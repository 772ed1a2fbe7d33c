"""`ChatService.InviteToChat` (dms-invite-to-chat): start an outbound chat
session from a strategy and send it a standard response."""

import functools
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from channels_app.bulk import copy_insert
from channels_app.choices import ContentType, MediaType
from channels_app.errors import ApplicationError, ExecutionFailed, InvalidParameter, NotFound, TransportUnreachable
from channels_app.models import (
    Channel,
    Contact,
    ContactOptOut,
    Delivery,
    Interaction,
    InteractionState,
    Message,
    StandardResponse,
)
from channels_app.models.configuration import CIRCUIT_FAILURE
from channels_app.options_catalog import DMS
from channels_app.prepared import execute_prepared
from channels_app.selectors import channel_find, channel_list, standard_response_for_sending
from channels_app.services.channels import channel_inbound_route
from channels_app.services.contacts import (
    ContactClaim,
    contact_changes,
    contact_key,
    contact_unsaved,
    contacts_identify,
)
from channels_app.services.deliveries import DISPATCHER_CHANNEL
from channels_app.services.email import email_payload, invitation_subject
from channels_app.services.interactions import (
    _CONTACT_KEY_SQL,
    _from_row,
    hub_driver_attributes,
    interaction_field_values,
    interaction_new,
    message_new_outbound,
    messages_queue_outbound,
)
from channels_app.services.options import option_value
from channels_app.services.standard_responses import standard_response_render_for
from channels_app.services.windows import (
    INTERACTIVE_OUTSIDE_WINDOW,
    INTERACTIVE_TYPES,
    customer_windows_close_at,
    is_open,
    window_applies,
    window_minutes_for_channel,
)
from channels_app.traces import message_fields, traffic
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
    delivery: Delivery | None = None  # owned by the caller when invitations_create was asked not to publish


def parse_flag(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value if value is not None else "").strip().lower()
    if text in TRUE_VALUES:
        return True
    if text in FALSE_VALUES:
        return False
    raise InvalidParameter(f"{name} incorrect: {value!r} is neither true nor false.", field=name)


def channel_resolve(channel_id: str | None, *, user) -> Channel:
    """`_umsChannel`: mandatory only when more than one channel is configured. A channel outside the
    tenants of `user` (the caller) is an unknown channel."""
    if channel_id:
        channel = channel_find(channel_id=channel_id, user=user)
        if channel is None:
            raise NotFound(f"_umsChannel unknown channel {channel_id!r}.", field="_umsChannel")
        return channel
    channels = list(channel_list(user=user).filter(enabled=True)[:2])
    if len(channels) != 1:
        raise InvalidParameter(
            "_umsChannel incorrect: the parameter is mandatory when more than one channel is configured."
            if channels else "_umsChannel incorrect: no channel is configured.",
            field="_umsChannel",
        )
    return channels[0]


@dataclass(frozen=True)
class Invitee:
    """One customer of an invitation: InviteToChat's per-customer parameters."""

    client_id: str
    contact_fields: dict = field(default_factory=dict)
    custom_properties: dict | list = field(default_factory=dict)
    user_data: dict = field(default_factory=dict)


@dataclass(frozen=True)
class InvitationPlan:
    """What the invitations of one request, or of one campaign batch, share; validated once."""

    channel: Channel
    business_id: str
    queue: str
    response: StandardResponse | None
    terminate_session: bool
    agent_fields: dict
    trace_id: str


def invitation_plan(
    *,
    channel: Channel,
    business_id: str | None = None,
    standard_response_id: str | None = None,
    chat_queue_key: str | None = None,
    terminate_session: bool = False,
    agent_fields: dict | None = None,
    trace_id: str = "",
) -> InvitationPlan:
    for name, value in (("_umsBusinessId", business_id), ("ChatQueueKey", chat_queue_key)):
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
        validate_queue_key(queue, tenant_id=channel.tenant_id)
    except Exception as error:
        raise InvalidParameter(f"ChatQueueKey incorrect: {' '.join(getattr(error, 'messages', [str(error)]))}",
                               field="ChatQueueKey") from error
    if chat_queue_key:
        chat_queue_key_check(channel=channel, queue_key=chat_queue_key)
    response = None
    if standard_response_id:
        response = standard_response_for_sending(standard_response_id=standard_response_id,
                                                 tenant_id=channel.tenant_id)
        if response is None:
            raise NotFound(f"StandardResponseId unknown standard response {standard_response_id!r}.",
                           field="StandardResponseId")
        if response.content_type not in CONTENT_TYPES_BY_MEDIA.get(channel.media_type, set()):
            raise ExecutionFailed(
                f"InviteToChat failed to execute request: StandardResponseId {response.pk} is "
                f"{response.content_type}, which a {channel.media_type} channel cannot send.",
                field="StandardResponseId",
            )
        from channels_app.services.templates import template_refusal

        if refusal := template_refusal(channel=channel, response=response):  # WhatsApp Cloud API channels only
            raise ExecutionFailed(f"InviteToChat failed to execute request: {refusal}.", field="StandardResponseId")
    return InvitationPlan(
        channel=channel, business_id=business_id or channel.business_id, queue=queue, response=response,
        terminate_session=terminate_session, agent_fields=agent_fields or {}, trace_id=trace_id,
    )


def chat_queue_key_check(*, channel: Channel, queue_key: str) -> None:
    """A ChatQueueKey points to "the Chat Server endpoint" (dms-invite-to-chat): one of the channel's
    endpoints (its `[channel-*]` section's `endpoints`), else InvalidParameter (ESP 904) naming it. Read
    from the channel's prefetched endpoints: the kept channel of ESP and campaigns (selectors.channels_by_id)
    carries them, so the check costs no statement there."""
    endpoints = sorted(endpoint.queue_key for endpoint in channel.endpoints.all())
    if queue_key not in endpoints:
        raise InvalidParameter(
            f"ChatQueueKey incorrect: {queue_key!r} is not an endpoint of channel {channel.channel_id} "
            f"({', '.join(endpoints) or 'it has none'}).",
            field="ChatQueueKey",
        )


def channel_circuit_check(*, channel: Channel) -> None:
    """ESP 901 for a channel that is down (its circuit is open: models.configuration.CIRCUIT_RULE)."""
    if channel.down_since is not None:
        raise TransportUnreachable(
            f"InviteToChat connection with {channel.channel_id} failed: the channel is down since "
            f"{channel.down_since.isoformat(timespec='seconds')} "
            f"({channel.consecutive_failures} deliveries in a row {CIRCUIT_FAILURE})."
        )


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
    if not client_id:
        raise InvalidParameter("_umsClientId incorrect: the parameter is mandatory.", field="_umsClientId")
    plan = invitation_plan(
        channel=channel, business_id=business_id, standard_response_id=standard_response_id,
        chat_queue_key=chat_queue_key, terminate_session=terminate_session, agent_fields=agent_fields,
        trace_id=trace_id,
    )
    channel_circuit_check(channel=channel)
    invitee = Invitee(
        client_id=client_id, contact_fields=contact_fields or {}, custom_properties=custom_properties or {},
        user_data=dict(user_data or {}),
    )
    if connection.vendor == "postgresql" and (invitation := _invitation_store_postgresql(plan, invitee)):
        return invitation
    with transaction.atomic():
        (outcome,) = invitations_create(plan=plan, invitees=[invitee])
        if isinstance(outcome, ApplicationError):
            raise outcome
    return outcome


def invitations_create(
    *, plan: InvitationPlan, invitees: list[Invitee], publish: bool = True
) -> list["Invitation | ApplicationError"]:
    """InviteToChat for each invitee, in the caller's transaction and in bulk:
    an invitee whose parameters or rendered response are refused gets its
    error (and nothing is written for it); the others get their interaction
    and message. With `publish`, each message is published to Celery after
    commit; without, the caller attempts the deliveries (a campaign batch)."""
    channel = plan.channel
    identification_attribute = option_value(section=DMS, name="contact-identification-attribute", channel=channel)
    outcomes: list = [None] * len(invitees)
    accepted = []
    for index, invitee in enumerate(invitees):
        try:
            outbound = _check_invitee(invitee)
        except ApplicationError as error:
            outcomes[index] = error
            continue
        accepted.append((index, invitee, outbound))
    contacts = contacts_identify(
        channel=channel,
        claims=[
            ContactClaim(
                client_id=invitee.client_id,
                phone_number=str(invitee.user_data.get(identification_attribute) or ""),
                properties=invitee.contact_fields,
            )
            for _index, invitee, _outbound in accepted
        ],
    )
    from channels_app.services.opt_out import opted_out_contact_ids

    opted_out = opted_out_contact_ids(channel=channel, contact_ids=[contact.pk for contact in contacts])
    now = timezone.now()
    windows = _interactive_windows(plan, contacts)
    renders = _RenderCache(plan.response) if plan.response is not None else None
    interactions, messages = [], []
    for (index, invitee, outbound), contact in zip(accepted, contacts, strict=True):
        if contact.pk in opted_out:
            outcomes[index] = _opted_out(plan, invitee)
            continue
        if windows is not None and not is_open(windows.get(contact.pk), now):
            outcomes[index] = ExecutionFailed(
                f"InviteToChat failed to execute request: {INTERACTIVE_OUTSIDE_WINDOW}", field="StandardResponseId"
            )
            continue
        attributes = hub_driver_attributes(channel=channel, client_id=invitee.client_id, business_id=plan.business_id)
        interaction = interaction_new(
            channel=channel, contact=contact, client_id=invitee.client_id, queue=plan.queue, outbound=outbound,
            user_data={**attributes, **invitee.user_data}, terminate_after_send=plan.terminate_session, now=now,
        )
        if plan.response is None:
            if plan.terminate_session:
                _ended_at_once(interaction, now)
            interactions.append(interaction)
            outcomes[index] = Invitation(interaction, None)
            continue
        try:
            payload = _payload(plan, invitee, contact, interaction, renders)
        except ApplicationError as error:
            outcomes[index] = error
            continue
        interactions.append(interaction)
        messages.append((index, _message(plan, interaction, payload)))
    copy_insert(Interaction, interactions)
    deliveries = messages_queue_outbound(messages=[message for _index, message in messages], publish=publish)
    for (index, message), delivery in zip(messages, deliveries, strict=True):
        outcomes[index] = Invitation(message.interaction, message.pk, delivery)
    return outcomes


def _interactive_windows(plan: InvitationPlan, contacts: list[Contact]) -> dict | None:
    """For reply buttons and list messages on WhatsApp (the 24-hour rule): when each customer's window
    closes, in one query for the whole batch; None when the rule does not apply (no query)."""
    if plan.response is None or plan.response.content_type not in INTERACTIVE_TYPES:
        return None
    if not window_applies(plan.channel):
        return None
    return customer_windows_close_at(
        channel=plan.channel, contact_ids=[contact.pk for contact in contacts],
        minutes=window_minutes_for_channel(channel=plan.channel),
    )


def _check_invitee(invitee: Invitee) -> bool:
    """The per-customer parameters; returns whether the interaction is outbound."""
    if not invitee.client_id:
        raise InvalidParameter("_umsClientId incorrect: the parameter is mandatory.", field="_umsClientId")
    if len(invitee.client_id) > MAX_ID_LENGTH:
        raise InvalidParameter(f"_umsClientId incorrect: longer than {MAX_ID_LENGTH} characters.",
                               field="_umsClientId")
    return parse_flag(invitee.user_data.get("GCTI_Chat_SubmitAsOutbound", "false"), "GCTI_Chat_SubmitAsOutbound")


def _ended_at_once(interaction: Interaction, now) -> None:
    """TerminateSessionFlag without a response: nothing to hand over, "ended immediately"."""
    interaction.state, interaction.ended_at = InteractionState.ENDED, now
    interaction.end_reason = "TerminateSessionFlag"


def _payload(plan: InvitationPlan, invitee: Invitee, contact: Contact | None, interaction: Interaction,
             renders: "_RenderCache | None" = None) -> dict:
    """The message's payload: the rendered response, in the e-mail shape on an e-mail channel (as agent replies:
    services/email.py)."""
    payload = _render(plan, invitee, contact, interaction, renders)
    if plan.channel.media_type == MediaType.EMAIL:
        subject = invitation_subject(interaction=interaction, response_name=plan.response.name)
        payload = email_payload(interaction=interaction, payload=payload, subject=subject)
    return payload


def _render(plan: InvitationPlan, invitee: Invitee, contact: Contact | None, interaction: Interaction,
            renders: "_RenderCache | None" = None) -> dict:
    """The one rendering rule (`standard_response_render_for`); what it refuses is 920 here. With `renders`,
    invitees whose values for the response's field codes are the same share one rendering."""
    stored = contact.field_code_values() if contact is not None else {}
    contact_fields = {**stored, **invitee.contact_fields}
    interaction_fields = interaction_field_values(interaction=interaction, business_id=plan.channel.business_id)
    key = renders.key(contact_fields, invitee.custom_properties, interaction_fields) if renders else None
    if key is not None and (rendered := renders.payloads.get(key)) is not None:
        renders.hits += 1
        return json.loads(rendered)  # a payload of its own: nothing after this shares it with another message
    try:
        payload = standard_response_render_for(
            response=plan.response, contact=None,
            fields={"Contact": contact_fields, "Agent": plan.agent_fields,
                    "CustomProperties": invitee.custom_properties},
            interaction_fields=interaction_fields,
        )
    except InvalidParameter as error:
        raise ExecutionFailed(f"InviteToChat failed to execute request: {error.message}",
                              field="StandardResponseId") from error
    if key is not None:
        renders.payloads[key] = json.dumps(payload)
    return payload


class _RenderCache:
    """Renderings of one response within one call, by the values its field codes read (names compared regardless
    of case, as rendering does): a campaign's batch renders once per distinct set of values, not once per
    recipient (issue 25, lever 6). A response that reads a value each invitee has its own (the interaction's or
    the contact's id) is rendered every time, as is an invitee whose values are not plain objects."""

    UNIQUE = {("Interaction", "id"), ("Contact", "id")}
    TRIAL = 32  # renderings without a single shared one after which the keys, costing more than they save, stop

    def __init__(self, response: StandardResponse):
        self.payloads: dict[tuple, str] = {}
        self.hits = 0
        self.used: dict[str, set[str]] = {}
        for code in response.field_codes():
            section, _, name = code.partition(".")
            self.used.setdefault(section, set()).add(name.casefold())
        self.useful = not any(name in self.used.get(section, ()) for section, name in self.UNIQUE)

    def key(self, contact: dict, custom_properties, interaction: dict) -> tuple | None:
        if self.useful and not self.hits and len(self.payloads) >= self.TRIAL:
            self.useful = False  # every recipient's values differ (a code per customer): render each
        if not self.useful or not isinstance(custom_properties, dict) or "OtherProperty" in custom_properties:
            return None
        parts = []
        for section, values in (("Contact", contact), ("CustomProperties", custom_properties),
                                ("Interaction", interaction)):
            used = self.used.get(section, ())
            for name, value in values.items():
                if isinstance(name, str) and name.casefold() in used:
                    if not isinstance(value, str):
                        return None
                    parts.append((section, name, value))
        return tuple(sorted(parts))


# --- one invitation on PostgreSQL in one statement (issue 25, lever 3) ---------------------------------------------
# `invitations_create`'s rules for one invitee, in SQL: the contact found by the key of `contact_identify` (each
# variant states its unique index's condition word for word) or inserted (ON CONFLICT DO NOTHING: a concurrent
# request's contact, committed, makes the statement write nothing and return no row, and the ORM path then reads
# it); the given properties kept on a found contact only when one changes (`_apply_properties`'s rule); an opt-out
# of the channel refusing the invitation with nothing written; the interaction, the message and its delivery
# inserted; the dispatcher woken (pg_notify, as `dispatcher_wake`: delivered with the commit). The response is
# rendered before the statement when no Contact code it holds can take its value from the stored contact; when
# one can, the contact's part runs first and the rows' part after the rendering, in one transaction.


def _columns(alias: str, fields) -> str:
    return ", ".join(f'{alias}."{f.column}"' for f in fields)


def _names(fields) -> str:
    return ", ".join(f'"{f.column}"' for f in fields)


_CONTACT_FIELDS = Contact._meta.concrete_fields
_NEW_CONTACT_FIELDS = [f for f in _CONTACT_FIELDS if not f.primary_key]
_DELIVERY_FIELDS = [f for f in Delivery._meta.concrete_fields if not f.primary_key]
_JSON = Contact._meta.get_field("attributes")


def _record(table: str, param: str) -> str:
    """A new row given as one JSON object of its columns (%(param)s): psycopg converts a statement of more than
    50 parameters or 4 KiB anew each time, which cost more than PostgreSQL's reading of the JSON."""
    return f"jsonb_populate_record(NULL::{table}, %({param})s::jsonb)"


@functools.lru_cache(maxsize=256)
def _contact_sql(kind: str, fields: tuple[str, ...], attributes: bool) -> str:
    """The contact's CTEs: `found`, `opted_out`, `new_contact`, `kept` (the given properties written) and `contact`
    (its row after them)."""
    contact = Contact._meta.db_table
    changed = [f'kept."{Contact._meta.get_field(name).column}" IS DISTINCT FROM %(set_{name})s' for name in fields]
    sets = [f'"{Contact._meta.get_field(name).column}" = %(set_{name})s' for name in fields]
    if attributes:
        changed.append("EXISTS (SELECT FROM jsonb_each(%(set_attributes)s::jsonb) AS given "
                       "WHERE kept.attributes -> given.key IS DISTINCT FROM given.value)")
        sets.append("attributes = kept.attributes || %(set_attributes)s::jsonb")
    kept = f"""kept AS (
    UPDATE {contact} AS kept SET {", ".join(sets)}, updated_at = %(now)s FROM found
    WHERE kept.id = found.id AND NOT EXISTS (SELECT FROM opted_out) AND (%(certain)s OR {" OR ".join(changed)})
    RETURNING kept.*
), """ if sets else ""
    return f"""found AS (
    SELECT contact.* FROM {contact} AS contact WHERE contact.tenant_id = %(tenant)s AND {_CONTACT_KEY_SQL[kind]}
), opted_out AS (
    SELECT FROM {ContactOptOut._meta.db_table} AS opt_out JOIN found ON opt_out.contact_id = found.id
    WHERE opt_out.channel_id = %(channel)s
), new_contact AS (
    INSERT INTO {contact} ({_names(_NEW_CONTACT_FIELDS)})
    SELECT {_names(_NEW_CONTACT_FIELDS)} FROM {_record(contact, "contact")} WHERE NOT EXISTS (SELECT FROM found)
    ON CONFLICT DO NOTHING RETURNING *
), {kept}contact AS (
    {"SELECT * FROM kept UNION ALL SELECT * FROM found WHERE NOT EXISTS (SELECT FROM kept)" if sets
     else "SELECT * FROM found"}
    UNION ALL SELECT * FROM new_contact
)"""


@functools.lru_cache(maxsize=4)
def _rows_sql(message: bool) -> str:
    """The interaction's CTE (its contact from `contact`, none when `opted_out`) and, with `message`, the message's
    and the delivery's; the last one wakes the dispatcher."""
    interaction = Interaction._meta.db_table
    rows = f"""interaction AS (
    INSERT INTO {interaction} SELECT row.* FROM contact, jsonb_populate_record(
        NULL::{interaction}, %(interaction)s::jsonb || jsonb_build_object('contact_id', contact.id)) AS row
    WHERE NOT EXISTS (SELECT FROM opted_out) RETURNING id
)"""
    if not message:
        return rows
    return rows + f""", message AS (
    INSERT INTO {Message._meta.db_table} SELECT row.* FROM interaction, {_record(Message._meta.db_table, "message")}
    AS row RETURNING id
), delivery AS (
    INSERT INTO {Delivery._meta.db_table} ({_names(_DELIVERY_FIELDS)})
    SELECT {_names(_DELIVERY_FIELDS)} FROM message, {_record(Delivery._meta.db_table, "delivery")}
    RETURNING id, pg_notify('{DISPATCHER_CHANNEL}', '')
)"""


@functools.lru_cache(maxsize=512)
def _statement(*, contact: tuple | None, message: bool) -> str:
    """`contact` ((kind, fields, attributes): the contact's CTEs) and the rows' CTEs; without `contact`, the rows
    of the contact %(contact_id)s. Its row: the contact's columns (with `contact`), whether the customer opted
    out, and the new delivery's id (None without one)."""
    if contact is None:
        head = "contact AS (SELECT %(contact_id)s::bigint AS id), opted_out AS (SELECT WHERE false), "
        columns = ""
    else:
        head = _contact_sql(*contact) + ", "
        columns = _columns("contact", _CONTACT_FIELDS) + ", "
    delivery = "(SELECT id FROM delivery)" if message else "NULL"
    return (f"WITH {head}{_rows_sql(message)}\nSELECT {columns}EXISTS (SELECT FROM opted_out), {delivery} "
            f"FROM contact")


@functools.lru_cache(maxsize=256)
def _contact_only_statement(kind: str, fields: tuple[str, ...], attributes: bool) -> str:
    return (f"WITH {_contact_sql(kind, fields, attributes)}\nSELECT {_columns('contact', _CONTACT_FIELDS)}, "
            f"EXISTS (SELECT FROM opted_out) FROM contact")


def _json_row(obj) -> str:
    """The columns of a new row as a JSON object (`_record`): the values `Model.save` would write (its automatic
    times set now), JSON columns nested."""
    values = {}
    for f in obj._meta.concrete_fields:
        values[f.column] = f.pre_save(obj, True) if getattr(f, "auto_now", False) or getattr(
            f, "auto_now_add", False) else getattr(obj, f.attname)
    return json.dumps(values, default=_isoformat)


def _isoformat(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _invitation_store_postgresql(plan: InvitationPlan, invitee: Invitee) -> Invitation | None:
    """`invitations_create` for one invitee (outside a transaction: the statement is one) in one statement, or two
    in a transaction when the rendering needs the stored contact. None when nothing was written and the ORM path is
    to be taken: a reply button or list message (the 24-hour window is read per contact), a response whose
    rendering is refused without the contact or carries attachments (their messages follow: services/media.py), a
    contact created by a concurrent request. Raises the refusals of `invitations_create` with nothing written."""
    outbound = _check_invitee(invitee)
    channel = plan.channel
    if plan.response is not None and plan.response.content_type in INTERACTIVE_TYPES and window_applies(channel):
        return None
    identification_attribute = option_value(section=DMS, name="contact-identification-attribute", channel=channel)
    key = contact_key(channel=channel, client_id=invitee.client_id,
                      phone_number=str(invitee.user_data.get(identification_attribute) or ""))
    new_contact = contact_unsaved(channel=channel, key=key, client_id=invitee.client_id,
                                  properties=invitee.contact_fields)
    changes = contact_changes(properties=invitee.contact_fields)
    now = timezone.now()
    attributes = hub_driver_attributes(channel=channel, client_id=invitee.client_id, business_id=plan.business_id)
    interaction = interaction_new(
        channel=channel, contact=None, client_id=invitee.client_id, queue=plan.queue, outbound=outbound,
        user_data={**attributes, **invitee.user_data}, terminate_after_send=plan.terminate_session, now=now,
    )
    params = {"tenant": channel.tenant_id, "key": key[1], "channel": channel.pk, "now": now,
              "certain": changes.certain, "contact": _json_row(new_contact),
              **{f"set_{name}": value for name, value in changes.fields.items()}}
    if changes.attributes:
        params["set_attributes"] = _JSON.get_db_prep_save(changes.attributes, connection)
    contact_part = (key[0], tuple(changes.fields), bool(changes.attributes))
    if plan.response is None or _renders_without_contact(plan.response, invitee.contact_fields):
        message = None
        if plan.response is not None:
            try:
                payload = _payload(plan, invitee, None, interaction)
            except ApplicationError:
                return None  # answered by the ORM path, which refuses an opted-out customer first
            if "attachments" in payload:
                return None
            message = _message(plan, interaction, payload)
        elif plan.terminate_session:
            _ended_at_once(interaction, now)
        rows, delivery = _rows_params(interaction, message)
        found = execute_prepared(_statement(contact=contact_part, message=message is not None), {**params, **rows})
        if not found:
            return None
        (row,) = found
        if row[-2]:
            raise _opted_out(plan, invitee)
        return _invitation(interaction, _contact_from(row), message, delivery, row[-1])
    with transaction.atomic():
        found = execute_prepared(_contact_only_statement(*contact_part), params)
        if not found:
            return None
        (row,) = found
        if row[-1]:
            raise _opted_out(plan, invitee)
        contact = _contact_from(row)
        interaction.contact = contact
        payload = _payload(plan, invitee, contact, interaction)  # its refusal rolls the contact's write back
        message = _message(plan, interaction, payload)
        if "attachments" in payload:  # their messages follow it, as `messages_queue_outbound` makes them
            Interaction.objects.bulk_create([interaction])
            (delivery,) = messages_queue_outbound(messages=[message])
            return Invitation(interaction, message.pk, delivery)
        rows, delivery = _rows_params(interaction, message)
        ((_nobody_opted_out, delivery_id),) = execute_prepared(_statement(contact=None, message=True),
                                                                {"contact_id": contact.pk, **rows})
    return _invitation(interaction, contact, message, delivery, delivery_id)


def _renders_without_contact(response: StandardResponse, given: dict) -> bool:
    """Whether every Contact code of the response takes the value given in the request's Contact: the stored
    contact's values come under the given ones (`standard_response_render_for`), and a code looked up in them is
    one without a given value (exact name; by case, FullName from the names, Id: from the stored ones)."""
    return all(given.get(name) is not None for section, _, name in
               (code.partition(".") for code in response.field_codes()) if section == "Contact")


def _message(plan: InvitationPlan, interaction: Interaction, payload: dict) -> Message:
    message = message_new_outbound(interaction=interaction, payload=payload, trace_id=plan.trace_id)
    message.channel = plan.channel  # already at hand: its delivery needs it
    return message


def _rows_params(interaction: Interaction, message: Message | None) -> tuple[dict, Delivery | None]:
    """The rows' parameters, and the message's delivery (as `deliveries_create` makes it: due now)."""
    if message is None:
        return {"interaction": _json_row(interaction)}, None
    now = timezone.now()
    delivery = Delivery(message=message, channel_id=message.channel_id, next_attempt_at=now, published_at=now)
    return {"interaction": _json_row(interaction), "message": _json_row(message),
            "delivery": _json_row(delivery)}, delivery


def _contact_from(row: tuple) -> Contact:
    return _from_row(Contact, row[:len(_CONTACT_FIELDS)])


def _opted_out(plan: InvitationPlan, invitee: Invitee) -> ExecutionFailed:
    """API.md "Opt-out": 920, and a refused campaign recipient."""
    return ExecutionFailed(
        f"InviteToChat failed to execute request: {invitee.client_id} opted out of {plan.channel.channel_id}.",
        field="_umsClientId")


def _invitation(interaction: Interaction, contact: Contact, message: Message | None, delivery: Delivery | None,
                delivery_id) -> Invitation:
    interaction.contact = contact
    interaction._state.adding, interaction._state.db = False, connection.alias
    if message is None:
        return Invitation(interaction, None)
    message._state.adding, message._state.db = False, connection.alias
    delivery.pk, delivery._state.adding, delivery._state.db = delivery_id, False, connection.alias
    if traffic.isEnabledFor(logging.INFO):
        traffic.info("Message %s queued.", message.pk, extra=message_fields(message))
    return Invitation(interaction, message.pk, delivery)
