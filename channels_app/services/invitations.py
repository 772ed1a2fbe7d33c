"""`ChatService.InviteToChat` (dms-invite-to-chat): start an outbound chat
session from a strategy and send it a standard response."""

import json
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from channels_app.bulk import copy_insert
from channels_app.choices import ContentType, MediaType
from channels_app.errors import ApplicationError, ExecutionFailed, InvalidParameter, NotFound, TransportUnreachable
from channels_app.models import Channel, Contact, Delivery, Interaction, InteractionState, StandardResponse
from channels_app.models.configuration import CIRCUIT_FAILURE
from channels_app.options_catalog import DMS
from channels_app.selectors import channel_find, channel_list, standard_response_for_sending
from channels_app.services.channels import channel_inbound_route
from channels_app.services.contacts import ContactClaim, contacts_identify
from channels_app.services.email import email_payload, invitation_subject
from channels_app.services.interactions import (
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
        if contact.pk in opted_out:  # API.md "Opt-out": 920, and a refused campaign recipient
            outcomes[index] = ExecutionFailed(
                f"InviteToChat failed to execute request: {invitee.client_id} opted out of {channel.channel_id}.",
                field="_umsClientId")
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
            if plan.terminate_session:  # nothing to hand over: "ended immediately"
                interaction.state, interaction.ended_at = InteractionState.ENDED, now
                interaction.end_reason = "TerminateSessionFlag"
            interactions.append(interaction)
            outcomes[index] = Invitation(interaction, None)
            continue
        try:
            payload = _render(plan, invitee, contact, interaction, renders)
        except ApplicationError as error:
            outcomes[index] = error
            continue
        if channel.media_type == MediaType.EMAIL:  # the e-mail shape, as agent replies (services/email.py)
            subject = invitation_subject(interaction=interaction, response_name=plan.response.name)
            payload = email_payload(interaction=interaction, payload=payload, subject=subject)
        interactions.append(interaction)
        message = message_new_outbound(interaction=interaction, payload=payload, trace_id=plan.trace_id)
        message.channel = channel  # already at hand: its deliveries need it
        messages.append((index, message))
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


def _render(plan: InvitationPlan, invitee: Invitee, contact: Contact, interaction: Interaction,
            renders: "_RenderCache | None" = None) -> dict:
    """The one rendering rule (`standard_response_render_for`); what it refuses is 920 here. With `renders`,
    invitees whose values for the response's field codes are the same share one rendering."""
    contact_fields = {**contact.field_code_values(), **invitee.contact_fields}
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
