"""What the agents' page (`/workspace/`) reads that the rest of the API did not answer: the agents a
conversation may be transferred to or shared with, the caller's own conversations with what waits in each,
and the channels a new session may use. Reads only; every write the page makes goes through the routing and
agent-message services."""

import re
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import Count, IntegerField, Min, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce

from channels_app import selectors
from channels_app.choices import MediaType
from channels_app.errors import InvalidParameter
from channels_app.models import AgentState, Channel, Interaction, Message
from channels_app.models.conversations import OPEN_INTERACTION_STATES, InteractionState, MessageDirection
from channels_app.option_values import all_option_values, option_definition_get, option_value
from channels_app.options_catalog import IW
from channels_app.services.agent_messages import outbound_session_channels

EPOCH = datetime(1970, 1, 1).astimezone()
INTERACTION_ID = re.compile(r"[A-Za-z0-9]{1,64}")  # as the interactions' URLs take them


def _use_workspace() -> Permission | None:
    return Permission.objects.filter(content_type__app_label="channels_app", codename="use_workspace").first()


@dataclass(frozen=True)
class WorkspaceAgent:
    id: int
    username: str
    display_name: str
    ready: dict
    capacity: int
    assigned: int


def workspace_agents(*, user, interaction_id: str | None = None) -> list[WorkspaceAgent]:
    """The active users of the caller's tenants (of the interaction's tenant when one is named: 400 naming
    `interaction` when the caller can't see it) who may use the workspace, by name, with their state."""
    users = selectors.user_list(user=user).filter(is_active=True)
    if interaction_id is not None:
        interaction = None
        if INTERACTION_ID.fullmatch(interaction_id):  # not text for the database otherwise (NUL, a megabyte)
            interaction = (selectors.interaction_list(user=user).select_related("channel")
                           .filter(pk=interaction_id).first())
        if interaction is None:
            raise InvalidParameter(f"Unknown interaction {interaction_id!r}.", field="interaction")
        users = users.filter(Q(memberships__tenant_id=interaction.channel.tenant_id) | Q(is_superuser=True))
    permission = _use_workspace()
    holds = Q(is_superuser=True)
    if permission is not None:
        holds |= Q(user_permissions=permission) | Q(groups__permissions=permission)
    found = list(get_user_model().objects.filter(pk__in=users.filter(holds).values("pk"))
                 .order_by("first_name", "last_name", "username"))
    ids = [agent.pk for agent in found]
    states = {state.user_id: state for state in AgentState.objects.filter(user_id__in=ids)}
    assigned = dict(Interaction.objects.filter(assigned_to_id__in=ids, state__in=OPEN_INTERACTION_STATES)
                    .order_by().values("assigned_to_id").annotate(n=Count("pk")).values_list("assigned_to_id", "n"))
    agents = []
    for agent in found:
        state = states.get(agent.pk) or AgentState(user=agent)
        agents.append(WorkspaceAgent(
            id=agent.pk, username=agent.get_username(), display_name=agent.get_full_name() or agent.get_username(),
            ready={media: bool((state.ready or {}).get(media, False)) for media in MediaType.values},
            capacity=state.capacity, assigned=assigned.get(agent.pk, 0)))
    return agents


def agent_conversations(*, user):
    """The caller's conversations not ended: those assigned to them and those whose conference they are in,
    oldest first, each annotated with `unread` (customer messages since the last message to the customer),
    `waiting_since` (the first of those: how long the customer has waited for an answer; null when none
    waits), its last message (`last_text`, `last_direction`, `last_at`) and `conference` (the caller is a
    member of its conference, not its holder). A fixed number of queries, whatever the number of
    conversations."""
    mine = Q(assigned_to=user) | Q(conference_members__agent=user)
    messages = Message.objects.filter(interaction=OuterRef("pk")).order_by()
    last_out = messages.filter(direction=MessageDirection.OUTBOUND).order_by("-created_at").values("created_at")[:1]
    unanswered = messages.filter(direction=MessageDirection.INBOUND,
                                 created_at__gt=Coalesce(OuterRef("last_out_at"), Value(EPOCH)))
    last = messages.order_by("-created_at", "-pk")
    return (selectors.interaction_list(user=user)
            .filter(pk__in=Interaction.objects.filter(mine).values("pk"))
            .exclude(state=InteractionState.ENDED)
            .select_related("channel", "contact")
            .annotate(last_out_at=Subquery(last_out))
            .annotate(
                unread=Coalesce(Subquery(unanswered.values("interaction").annotate(n=Count("pk")).values("n")),
                                Value(0), output_field=IntegerField()),
                waiting_since=Subquery(unanswered.values("interaction").annotate(at=Min("created_at")).values("at")),
                last_text=Subquery(last.values("text")[:1]),
                last_direction=Subquery(last.values("direction")[:1]),
                last_at=Subquery(last.values("created_at")[:1]),
            )
            .order_by("created_at", "pk"))


def session_channels(*, user, interaction: Interaction) -> list[Channel]:
    """The channels a new session may be started on from `interaction` (POST .../sessions/ accepts them): its
    own channel first, then those of its outbound session config that exist, are enabled and are of the
    caller's tenants and of the interaction's tenant."""
    listed = [entry.channel_id for entry in outbound_session_channels(interaction=interaction)]
    visible = {channel.channel_id: channel for channel in selectors.channel_list(user=user).filter(
        channel_id__in=[interaction.channel.channel_id, *listed], enabled=True,
        tenant_id=interaction.channel.tenant_id)}
    ordered = [interaction.channel.channel_id, *listed]
    return [visible[channel_id] for channel_id in dict.fromkeys(ordered) if channel_id in visible]


# --- the options the page reads (channels_app/workspace/options.py names them) -----------------------------------


def _json_value(value):
    return list(value) if isinstance(value, tuple) else value  # an integer pair, as a JSON array


def workspace_option_values(*, names: list[str]) -> dict:
    """`{"<name>": value}`: the global value of each option named (section interaction-workspace), typed as
    the catalog parses it (booleans, integers, [a, b] pairs, JSON objects, text)."""
    return {name: _json_value(option_value(section=IW, name=name)) for name in names}


def workspace_channel_option_values(*, user, names: list[str]) -> dict:
    """`{"<channel id>": {"<name>": value}}`: the values the channels of the user's tenants set for
    themselves among the options named (a channel without its own values is left out)."""
    wanted = set(names)
    own: dict[int, dict] = {}
    for (section, name, channel_id), stored in all_option_values().items():
        if section == IW and name in wanted and channel_id is not None:
            own.setdefault(channel_id, {})[name] = _json_value(
                option_definition_get(section=IW, name=name).parse(stored))
    if not own:
        return {}
    channels = selectors.channel_list(user=user).filter(pk__in=own).values_list("pk", "channel_id")
    return {channel_id: own[pk] for pk, channel_id in channels}
