"""The server's own routing (API.md, "Routing to agents"; ARCHITECTURE.md, "Agents, routing and live
events"): queues routed by the server (`workspace`), agents' readiness and capacity, offers and their
expiry, transfer, conference (the WhatsApp guide's InternalConferenceInvite) and notes.

Who makes the offers. A web request (a customer's first message, a transfer to a queue, a reject, an agent
ready or with more capacity, an interaction ended) only writes what changed and says which queues may have
work (`offers_due`: a NOTIFY `offers_due` at its commit on PostgreSQL). The offers themselves are made by
one loop, the dispatcher's (`manage.py dispatch`, channels_app/dispatcher.py): woken by that NOTIFY (polling
on SQLite), it runs `offers_make`, the offer step. So a burst of customers does not queue up its requests on
the same agents' rows, and the request answers without waiting for an agent.

Every step is a short transaction on rows, so two agents can never take one interaction and a killed
process loses nothing:

* an interaction waits in a queue while `routing_queue` is set (first come, first served by `queued_at`):
  that row is the record of the work, the NOTIFY only a wake-up;
* one pass over a queue at a time, across processes: each offer's transaction first takes the queue's row
  (`FOR NO KEY UPDATE SKIP LOCKED`; a dispatcher that finds it taken leaves the queue to the one working on
  it and looks again a moment later), then offers the queue's first waiting interaction, so two
  dispatchers side by side (two nodes) keep the order and never offer one interaction twice;
* the database holds at most one pending offer to take an interaction (a partial unique index), and an
  offer is taken by one conditional UPDATE (`pending` -> `accepted`, not yet expired): of two accepts one
  wins, the other is a Conflict;
* an agent's load (interactions assigned and offers pending) is counted again under a lock of the agent's
  row before an offer is made, so capacity holds across processes (a transfer or conference invite made
  by a request counts too);
* what is due (offers past their time, interactions waiting with nobody offered) is found again from the
  rows by `routing_sweep`, which the dispatcher runs every second: an offer made or answered in a process
  that died, or a NOTIFY that nobody heard (the dispatcher was down), is never lost.

Queues routed outside (`external`, the default) are not touched here: nothing changes for Genesys.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from channels_app.choices import BusinessAttributeType, MediaType
from channels_app.errors import Conflict, InvalidFields, InvalidParameter, NotFound, PermissionDenied
from channels_app.models import (
    AgentState,
    BusinessAttributeValue,
    ConferenceMember,
    Interaction,
    InteractionNote,
    InteractionState,
    Offer,
    OfferKind,
    OfferState,
    Queue,
    QueueRouting,
)
from channels_app.models.conversations import OPEN_INTERACTION_STATES
from channels_app.models.routing import CAPACITY_MAX, CAPACITY_MIN
from channels_app.options_catalog import IW
from channels_app.selectors import queues_by_key
from channels_app.services.agent_events import (
    INTERACTION,
    OFFER,
    OFFER_WITHDRAWN,
    events_add,
    interaction_data,
    interaction_watchers,
    offer_data,
)
from channels_app.services.options import option_value
from channels_app.text_rules import text_rule_broken

USE_WORKSPACE = "channels_app.use_workspace"
SUPERVISOR = "channels_app.change_interaction"
CONFERENCE_SUBTYPE = "InternalConferenceInvite"  # the Interaction Subtype value the WhatsApp guide requires
CONFERENCE_QUEUE_OPTION = "intercommunication.whatsappsession.queue"
DEFAULT_OFFER_TIMEOUT_SECONDS = 30  # an offer not from a queue (a transfer or invite to an agent)
NOTE_MAX_BYTES = 64 * 1024
DISPATCH_BATCH = 100  # interactions looked at per queue and call
EXPIRE_BATCH = 500
TAKING = ~Q(kind=OfferKind.CONFERENCE)  # offers that would assign the interaction


def _offered(offer: Offer) -> Offer:
    """An offer just made: the agent's stream hears of it in the same transaction."""
    events_add(user_ids=[offer.agent_id], kind=OFFER, data=offer_data(offer))
    return offer


def _offers_close(offers: QuerySet, *, state: str, now: datetime) -> list[int]:
    """Pending offers of `offers` end (expired or withdrawn); their agents' streams hear of it. The agents
    of the offers closed (one per offer)."""
    closing = list(offers.filter(state=OfferState.PENDING).values_list("pk", "agent_id", "interaction_id"))
    if not closing:
        return []
    Offer.objects.filter(pk__in=[pk for pk, _, _ in closing], state=OfferState.PENDING).update(
        state=state, answered_at=now)
    for pk, agent_id, interaction_id in closing:
        events_add(user_ids=[agent_id], kind=OFFER_WITHDRAWN,
                   data={"id": pk, "interaction": interaction_id, "state": state})
    return [agent_id for _, agent_id, _ in closing]


# --- queues -----------------------------------------------------------------------------------------------------


def queue_for_key(key: str) -> Queue | None:
    """The queue of a chat queue key (recently read: selectors.queues_by_key), None when it has none."""
    return queues_by_key.get(key) if key else None


def _tenant_members(tenant_id: int) -> QuerySet:
    return get_user_model().objects.filter(Q(memberships__tenant_id=tenant_id) | Q(is_superuser=True))


def queue_agents_outside(*, tenant_id: int, agents) -> list[str]:
    """The agents (users) who are not members of the tenant, by name."""
    members = set(_tenant_members(tenant_id).filter(pk__in=[a.pk for a in agents]).values_list("pk", flat=True))
    return sorted(agent.get_username() for agent in agents if agent.pk not in members)


@transaction.atomic
def queue_save(*, queue: Queue, agents: list | None = None) -> Queue:
    """Validate and save a queue (new or changed); `agents` (users) replaces its agents when given. Agents
    must be members of the queue's tenant (400 naming `agents`). All is checked before anything is
    written."""
    from django.core.exceptions import ValidationError

    errors: dict[str, list[str]] = {}
    try:
        queue.full_clean(validate_unique=True)
    except ValidationError as error:
        errors.update(error.message_dict)
    if agents is not None and queue.tenant_id is not None:
        if strangers := queue_agents_outside(tenant_id=queue.tenant_id, agents=agents):
            errors["agents"] = [f"Not members of tenant {queue.tenant_id}: {', '.join(strangers)}."]
    if errors:
        raise InvalidFields(errors)
    queue.save()
    if agents is not None:
        queue.agents.set(agents)
    queues_by_key.clear()
    if queue.routing == QueueRouting.WORKSPACE:
        offers_due([queue.pk])  # its agents (new ones perhaps) are offered what waits
    else:  # routed outside again: nothing waits for our agents any more (their other queues may offer)
        _capacity_freed(_offers_close(Offer.objects.filter(queue=queue, kind=OfferKind.ROUTE),
                                      state=OfferState.WITHDRAWN, now=timezone.now()))
        Interaction.objects.filter(routing_queue=queue).update(routing_queue=None, queued_at=None)
    return queue


@transaction.atomic
def queue_delete(*, queue: Queue) -> None:
    """Delete a queue: its pending offers are withdrawn and what waited in it waits no more."""
    _capacity_freed(_offers_close(Offer.objects.filter(queue=queue), state=OfferState.WITHDRAWN,
                                  now=timezone.now()))
    Interaction.objects.filter(routing_queue=queue).update(routing_queue=None, queued_at=None)
    queue.delete()
    queues_by_key.clear()


def queues_with_waiting(queryset: QuerySet) -> QuerySet:
    """`queryset` of queues with `waiting` (interactions not yet accepted) and `oldest_queued_at`."""
    waiting = Interaction.objects.filter(routing_queue=OuterRef("pk")).exclude(state=InteractionState.ENDED)
    return queryset.annotate(
        waiting_count=Coalesce(Subquery(
            waiting.order_by().values("routing_queue").annotate(n=Count("pk")).values("n")), Value(0)),
        oldest_queued_at=Subquery(waiting.order_by("queued_at").values("queued_at")[:1]),
    )


def oldest_waiting_seconds(oldest_queued_at: datetime | None, now: datetime | None = None) -> int | None:
    if oldest_queued_at is None:
        return None
    return max(0, int(((now or timezone.now()) - oldest_queued_at).total_seconds()))


# --- entering a queue ------------------------------------------------------------------------------------------


def interaction_enter_queue(*, interaction: Interaction, now: datetime | None = None) -> list[str]:
    """An interaction that enters a queue (a customer's first message, a reply to an invitation): when its
    queue is routed by the server and nobody holds it, it waits there, and the dispatcher is told at the
    caller's commit (it makes the offer). Changes the interaction without saving it; returns the fields
    changed (none for a queue routed outside)."""
    if interaction.assigned_to_id is not None or interaction.routing_queue_id is not None:
        return []
    queue = queue_for_key(interaction.queue)
    if queue is None or queue.routing != QueueRouting.WORKSPACE:
        return []
    interaction.routing_queue_id = queue.pk
    interaction.queued_at = now or timezone.now()
    offers_due([queue.pk])
    return ["routing_queue", "queued_at"]


def interaction_hold_new(*, interaction: Interaction, agent) -> None:
    """A new outbound session an agent starts (`POST /api/interactions/{id}/sessions/`): on a queue routed
    by the server it is assigned to that agent from the start (the customer's reply then reaches them, not
    the queue). Changes the interaction before it is saved."""
    queue = queue_for_key(interaction.queue)
    if queue is not None and queue.routing == QueueRouting.WORKSPACE:
        interaction.assigned_to_id = agent.pk


# --- offers -----------------------------------------------------------------------------------------------------

OFFERS_CHANNEL = "offers_due"  # the PostgreSQL channel the dispatcher LISTENs on for queues with work


def offers_due(queue_ids: Iterable[int | None]) -> None:
    """Tell the dispatcher that these queues may have something to offer (an interaction entered, an agent
    became ready or freed capacity, an offer was rejected): on PostgreSQL a NOTIFY `offers_due` with their
    ids, delivered when the caller's transaction commits (so the dispatcher reads what it committed); on
    SQLite nothing, the dispatcher polls. Only a wake-up: the rows are the truth, and a notification nobody
    heard is made up for by the sweep."""
    ids = sorted({int(queue_id) for queue_id in queue_ids if queue_id is not None})
    if ids and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [OFFERS_CHANNEL, ",".join(map(str, ids))])


def offers_due_ids(payload: str) -> set[int]:
    """The queue ids of an `offers_due` notification."""
    return {int(part) for part in payload.split(",") if part.isdigit()}


def _queues_of(user_ids: Iterable[int | None]) -> list[int]:
    """The queues routed by the server that these agents are offered from."""
    users = {user_id for user_id in user_ids if user_id is not None}
    if not users:
        return []
    return list(Queue.objects.filter(agents__in=users, routing=QueueRouting.WORKSPACE).order_by()
                .values_list("pk", flat=True).distinct())


def _capacity_freed(user_ids: Iterable[int | None]) -> None:
    """Agents who took on less (an interaction ended or left them, an offer to them ended): their queues
    offer what waits."""
    offers_due(_queues_of(user_ids))


def _load_of(user) -> Coalesce:
    """An agent's load (`user`: an id or OuterRef): interactions assigned to them and not ended, plus offers
    pending to them."""
    assigned = (Interaction.objects.filter(assigned_to=user, state__in=OPEN_INTERACTION_STATES)
                .order_by().values("assigned_to").annotate(n=Count("pk")).values("n"))
    pending = (Offer.objects.filter(agent=user, state=OfferState.PENDING)
               .order_by().values("agent").annotate(n=Count("pk")).values("n"))
    return Coalesce(Subquery(assigned), Value(0)) + Coalesce(Subquery(pending), Value(0))


def _load(user_id: int) -> int:
    """The agent's load now (a statement of its own: run after their row is locked, it sees what another
    process committed while this one waited for the lock)."""
    return AgentState.objects.filter(pk=user_id).annotate(load=_load_of(user_id)).values_list(
        "load", flat=True).first() or 0


def _workspace_users() -> Q:
    """Users who hold use_workspace (through a group or of their own) or are superusers, as ModelBackend's
    `with_perm` finds them, but in subqueries that do not depend on the row (PostgreSQL hashes each once,
    where `with_perm`'s is run again for every agent: most of the time of reading a queue's agents)."""
    user_model = get_user_model()
    app_label, codename = USE_WORKSPACE.split(".")
    permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename)
    return Q(is_active=True) & (
        Q(is_superuser=True)
        | Q(pk__in=user_model.groups.through.objects.filter(group__permissions__in=permission).values("user_id"))
        | Q(pk__in=user_model.user_permissions.through.objects.filter(permission__in=permission).values("user_id"))
    )


def _candidates(*, queue: Queue, media: str, exclude=(), group: str | None = None,
                with_room: bool = True) -> QuerySet:
    """The agents who may be offered an interaction of `queue` now: its active agents holding
    use_workspace, ready for `media`, with free capacity (all of them, full or not, without `with_room`),
    the one idle longest first (annotated with their `load`)."""
    candidates = (
        AgentState.objects.filter(user__in=queue.agents.filter(_workspace_users()).values("pk"))
        .filter(**{f"ready__{media}": True})
        .annotate(load=_load_of(OuterRef("user_id")))
        .exclude(user_id__in=list(exclude))
    )
    if with_room:
        candidates = candidates.filter(load__lt=F("capacity"))
    if group is not None:
        candidates = candidates.filter(user__groups__name=group)
    return candidates.order_by("idle_since", "user_id")


def _offer_to_first_free(candidates: list[AgentState], make) -> Offer | None:
    """Lock each candidate's row in turn, count its load again (what another process offered meanwhile is
    seen once the lock is ours) and make the offer to the first with room; None when none has."""
    for candidate in candidates:
        state = AgentState.objects.select_for_update().filter(pk=candidate.pk).first()
        if state is None or _load(state.pk) >= state.capacity:
            continue
        try:
            with transaction.atomic():
                return make(state.pk)
        except IntegrityError:  # the interaction was offered meanwhile (one pending offer at a time)
            return None
    return None


def _expires(queue: Queue | None, now: datetime) -> datetime:
    seconds = queue.offer_timeout_seconds if queue is not None else DEFAULT_OFFER_TIMEOUT_SECONDS
    return now + timedelta(seconds=seconds)


def _waiting() -> QuerySet:
    """Interactions waiting in a queue with nobody offered them (no pending offer that would take them)."""
    return (Interaction.objects.filter(routing_queue__isnull=False).exclude(state=InteractionState.ENDED)
            .exclude(Exists(Offer.objects.filter(TAKING, interaction=OuterRef("pk"), state=OfferState.PENDING))))


def _queues_with_waiting() -> list[int]:
    """The queues with something waiting unoffered, asked queue by queue (one probe of `interaction_waiting`
    each). A DISTINCT over the interactions let the planner scan the whole table once its statistics lagged behind
    a campaign's inserts: 0.5 s and 1 GB read every second at 440,000 interactions, none of them in a queue."""
    return list(Queue.objects.filter(Exists(_waiting().filter(routing_queue=OuterRef("pk"))))
                .values_list("pk", flat=True))


@dataclass
class _Candidate:
    agent_id: int
    capacity: int
    load: int


@dataclass
class _Pass:
    """One pass of the offer step over a queue. The candidates are read once per media and kept up to date
    with the offers the pass makes (each offer still counts the chosen agent's load again under the lock of
    their row): a burst of interactions costs one read of the agents, not one per interaction."""

    queue_id: int
    pool: dict[str, list[_Candidate]] = field(default_factory=dict)
    stuck: set[str] = field(default_factory=set)  # media whose first waiting interaction found nobody
    tried: set[tuple[str, int]] = field(default_factory=set)  # (interaction, agent) refused by the database


BUSY, NOBODY, RACED = "busy", "nobody", "raced"


def _offer_first_waiting(run: _Pass):
    """In one transaction: take the queue (another process working on it: BUSY), its first waiting
    interaction of a media not stuck (none: None), and offer it to the agent idle longest who is ready for
    its media and has room, one who refused it since it entered the queue only when nobody else has (none:
    NOBODY, and the media is stuck for this pass: what came after it on the same media waits too). The
    offer, or RACED when the database refused it (it was offered meanwhile)."""
    interaction_id = agent_id = None
    try:
        with transaction.atomic():
            queue = (Queue.objects.select_for_update(no_key=True, skip_locked=True).filter(pk=run.queue_id)
                     .first())
            if queue is None:
                return BUSY if Queue.objects.filter(pk=run.queue_id).exists() else None
            if queue.routing != QueueRouting.WORKSPACE:
                return None
            interaction = (_waiting().filter(routing_queue_id=queue.pk).exclude(channel__media_type__in=run.stuck)
                           .select_for_update(of=("self",)).select_related("channel").order_by("queued_at", "pk")
                           .first())
            if interaction is None:
                return None
            interaction_id, media = interaction.pk, interaction.channel.media_type
            if media not in run.pool:
                run.pool[media] = [_Candidate(*row) for row in _candidates(
                    queue=queue, media=media, with_room=False).values_list("user_id", "capacity", "load")]
            refused = set(Offer.objects.filter(
                interaction=interaction, state__in=[OfferState.REJECTED, OfferState.EXPIRED],
                created_at__gte=interaction.queued_at).values_list("agent_id", flat=True)) \
                if interaction.queued_at is not None else set()
            excluded = {interaction.assigned_to_id} | {agent for pk, agent in run.tried if pk == interaction_id}
            order = sorted((candidate for candidate in run.pool[media]
                            if candidate.load < candidate.capacity and candidate.agent_id not in excluded),
                           key=lambda candidate: candidate.agent_id in refused)  # stable: idle longest first
            for candidate in order:
                state = (AgentState.objects.select_for_update().filter(pk=candidate.agent_id)
                         .values_list("ready", "capacity").first())
                if state is None or not (state[0] or {}).get(media):
                    candidate.capacity = 0  # not ready any more: not for this pass
                    continue
                candidate.capacity, candidate.load = state[1], _load(candidate.agent_id)
                if candidate.load >= candidate.capacity:
                    continue
                agent_id, now = candidate.agent_id, timezone.now()
                offer = _offered(Offer.objects.create(
                    interaction=interaction, queue=queue, agent_id=agent_id, kind=OfferKind.ROUTE,
                    created_at=now, expires_at=_expires(queue, now)))
                candidate.load += 1
                return offer
            run.stuck.add(media)
            return NOBODY
    except IntegrityError:  # offered meanwhile, or this agent has it offered already (a conference invite)
        if interaction_id is not None and agent_id is not None:
            run.tried.add((interaction_id, agent_id))
        return RACED


@dataclass(frozen=True)
class OffersMade:
    made: int  # offers made
    busy: frozenset[int]  # queues to look at again in a moment (another process was working on them, or
    # their pass reached its limit)


def offers_make(*, queue_ids: Iterable[int] | None = None, limit: int = DISPATCH_BATCH) -> OffersMade:
    """The offer step (the dispatcher's loop runs it when woken, and the sweep every second): what waits in
    the queues `queue_ids` (None: every queue with something waiting unoffered) is offered, first come first
    served, each interaction to one ready agent with free capacity (the one idle longest first), at most
    `limit` offers per queue. What finds no agent keeps waiting, and so does what came after it on the same
    media. A queue another process is working on is left to it, and one with more than `limit` to offer
    waits for the next pass (both in `busy`)."""
    if queue_ids is None:
        queue_ids = _queues_with_waiting()
    made, busy = 0, set()
    for queue_id in sorted(set(queue_ids)):
        run, offered = _Pass(queue_id=queue_id), 0
        for _ in range(2 * limit):  # an attempt either offers or rules something out: this bound is not met
            outcome = _offer_first_waiting(run)
            if outcome is None:
                break
            if outcome == BUSY:
                busy.add(queue_id)
                break
            if isinstance(outcome, Offer):
                offered += 1
                if offered >= limit:  # more may wait: looked at again in a moment, after the other queues
                    busy.add(queue_id)
                    break
        made += offered
    return OffersMade(made=made, busy=frozenset(busy))


def _offer_of(user, offer_id) -> Offer:
    offer = Offer.objects.select_related("queue").filter(pk=offer_id, agent=user).first() if str(
        offer_id).isdigit() else None
    if offer is None:
        raise NotFound("Unknown offer.", field="id")  # another agent's offer as much as a missing one
    return offer


def _why_not_pending(offer_id: int, now: datetime) -> str:
    offer = Offer.objects.get(pk=offer_id)
    if offer.state == OfferState.PENDING and offer.expires_at <= now:
        return "The offer has expired."
    return {
        OfferState.ACCEPTED: "The offer was already taken.",
        OfferState.REJECTED: "The offer was rejected.",
        OfferState.EXPIRED: "The offer has expired.",
        OfferState.WITHDRAWN: "The offer was withdrawn.",
    }.get(offer.state, "The offer is not pending.")


def offer_accept(*, offer_id, user) -> Interaction:
    """Accept an offer (API.md `POST /api/offers/{id}/accept/`): the interaction is assigned to the agent
    (a transfer's sender lets it go) or, for a conference invite, the agent joins its conference. Another
    agent's offer is NotFound; one that expired, was withdrawn, rejected or taken is a Conflict: the offer
    changes state in one conditional UPDATE, so of two accepts exactly one wins."""
    now = timezone.now()
    with transaction.atomic():
        offer = _offer_of(user, offer_id)
        taken = Offer.objects.filter(pk=offer.pk, state=OfferState.PENDING, expires_at__gt=now).update(
            state=OfferState.ACCEPTED, answered_at=now)
        if not taken:
            raise Conflict(_why_not_pending(offer.pk, now), field="id")
        interaction = Interaction.objects.select_for_update(of=("self",)).select_related("channel").get(
            pk=offer.interaction_id)
        if interaction.state == InteractionState.ENDED:
            raise Conflict("The interaction has ended.", field="id")  # rolled back: the offer stays as it was
        if offer.kind == OfferKind.CONFERENCE:
            ConferenceMember.objects.get_or_create(interaction=interaction, agent=user)
            events_add(user_ids=[user.pk, interaction.assigned_to_id], kind=INTERACTION,
                       data=interaction_data(interaction, "conference"))
        else:
            previous = interaction.assigned_to_id
            interaction.assigned_to = user
            interaction.routing_queue = None
            interaction.queued_at = None
            if offer.queue is not None:
                interaction.queue = offer.queue.key
            if interaction.state == InteractionState.QUEUED:
                interaction.state = InteractionState.ACTIVE
            interaction.save(update_fields=["assigned_to", "routing_queue", "queued_at", "queue", "state"])
            ConferenceMember.objects.filter(interaction=interaction, agent=user).delete()
            events_add(user_ids=[user.pk], kind=INTERACTION, data=interaction_data(interaction, "assigned"))
            if previous is not None and previous != user.pk:  # a transfer: the sender's capacity is free
                events_add(user_ids=[previous], kind=INTERACTION, data=interaction_data(interaction, "transferred"))
                AgentState.objects.filter(pk=previous).update(idle_since=now)
                _capacity_freed([previous])
        AgentState.objects.filter(pk=user.pk).update(idle_since=now)
    return interaction


def offer_reject(*, offer_id, user) -> Offer:
    """Reject an offer (`POST /api/offers/{id}/reject/`): an interaction of a queue goes back to it and is
    offered to another agent (to this one again only while nobody else is ready); a transfer or invite to
    this agent simply does not happen."""
    now = timezone.now()
    with transaction.atomic():
        offer = _offer_of(user, offer_id)
        if not Offer.objects.filter(pk=offer.pk, state=OfferState.PENDING, expires_at__gt=now).update(
                state=OfferState.REJECTED, answered_at=now):
            raise Conflict(_why_not_pending(offer.pk, now), field="id")
        offer.state, offer.answered_at = OfferState.REJECTED, now
        # the interaction goes to the next agent, and the agent who rejected has room again
        routing_queue = Interaction.objects.filter(pk=offer.interaction_id).values_list(
            "routing_queue_id", flat=True).first()
        offers_due([offer.queue_id, routing_queue, *_queues_of([user.pk])])
    return offer


def offers_expire(*, now: datetime | None = None) -> int:
    """Offers not answered in time expire (what they offered is offered again by the sweep's offer step,
    routing_sweep). How many expired."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            Offer.objects.select_for_update(skip_locked=True).filter(state=OfferState.PENDING, expires_at__lte=now)
            .order_by("expires_at").values_list("pk", "queue_id", "interaction_id")[:EXPIRE_BATCH]
        )
        if not due:
            return 0
        _offers_close(Offer.objects.filter(pk__in=[pk for pk, _, _ in due]), state=OfferState.EXPIRED, now=now)
    return len(due)


def routing_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """What is due, found again from the rows (the dispatcher runs it every second): offers past their
    time expire, offers of ended interactions are withdrawn, ended interactions stop waiting, and every
    queue with an interaction waiting unoffered tries its agents again (the offer step, `offers_make`):
    so an offer expired moves on, and what a notification nobody heard (the dispatcher was down) should
    have offered is offered."""
    now = now or timezone.now()
    expired = offers_expire(now=now)
    withdrawn = len(_offers_close(Offer.objects.filter(interaction__state=InteractionState.ENDED),
                                  state=OfferState.WITHDRAWN, now=now))
    Interaction.objects.filter(routing_queue__isnull=False, state=InteractionState.ENDED).update(
        routing_queue=None, queued_at=None)
    made = offers_make()
    return {"expired": expired, "withdrawn": withdrawn, "offered": made.made}


def interaction_release(*, interaction: Interaction) -> None:
    """An interaction that ended: its pending offers are withdrawn, it waits no more, and the capacity of
    the agent who held it (and of those it was offered to) is free: their queues offer what waits once the
    transaction commits (offers_due)."""
    now = timezone.now()
    offered_to = _offers_close(Offer.objects.filter(interaction=interaction), state=OfferState.WITHDRAWN, now=now)
    events_add(user_ids=interaction_watchers(interaction), kind=INTERACTION,
               data=interaction_data(interaction, "ended"))
    if interaction.routing_queue_id is not None:
        Interaction.objects.filter(pk=interaction.pk).update(routing_queue=None, queued_at=None)
        interaction.routing_queue_id, interaction.queued_at = None, None
    if interaction.assigned_to_id is not None:
        AgentState.objects.filter(pk=interaction.assigned_to_id).update(idle_since=now)
    _capacity_freed([interaction.assigned_to_id, *offered_to])


# --- agents -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentView:
    ready: dict
    capacity: int
    assigned: int
    idle_since: datetime


def agent_state_get(*, user) -> AgentView:
    """The caller's state (`GET /api/agents/me/`): ready per media (every media named), capacity, how many
    interactions are assigned to them."""
    state = AgentState.objects.filter(pk=user.pk).first() or AgentState(user=user)
    assigned = Interaction.objects.filter(assigned_to=user, state__in=OPEN_INTERACTION_STATES).count()
    ready = {media: bool((state.ready or {}).get(media, False)) for media in MediaType.values}
    return AgentView(ready=ready, capacity=state.capacity, assigned=assigned, idle_since=state.idle_since)


def agent_state_update(*, user, ready: dict | None = None, capacity=None) -> AgentView:
    """Change the caller's readiness (`{"whatsapp": true, ...}`, only the media named change) and capacity
    (1-20); 400 naming `ready` (an unknown media, a value not true/false) or `capacity`. Becoming ready, or
    more capacity, tells the dispatcher to offer what waits in the agent's queues (offers_due, at the
    commit)."""
    errors: dict[str, list[str]] = {}
    if ready is not None:
        if not isinstance(ready, dict):
            errors["ready"] = ['An object of media and true/false, e.g. {"whatsapp": true}.']
        else:
            unknown = sorted(str(media) for media in ready if media not in MediaType.values)
            if unknown:
                errors["ready"] = [f"Unknown media {', '.join(unknown)}; one of {', '.join(MediaType.values)}."]
            elif any(not isinstance(value, bool) for value in ready.values()):
                errors["ready"] = ["Each media is true or false."]
    if capacity is not None and (isinstance(capacity, bool) or not isinstance(capacity, int)
                                 or not CAPACITY_MIN <= capacity <= CAPACITY_MAX):
        errors["capacity"] = [f"A whole number from {CAPACITY_MIN} to {CAPACITY_MAX}."]
    if errors:
        raise InvalidFields(errors)
    now = timezone.now()
    with transaction.atomic():
        AgentState.objects.get_or_create(user=user)
        state = AgentState.objects.select_for_update().get(pk=user.pk)
        was_ready = {media for media, value in (state.ready or {}).items() if value}
        if ready is not None:
            state.ready = {**(state.ready or {}), **ready}
        if capacity is not None:
            state.capacity = capacity
        if not was_ready and any(state.ready.values()):
            state.idle_since = now  # idle from the moment they are ready
        state.save()
        _capacity_freed([user.pk])
    return agent_state_get(user=user)


def agent_offers(*, user) -> QuerySet:
    """The caller's pending offers, oldest first (`GET /api/agents/me/offers/`)."""
    return (Offer.objects.filter(agent=user, state=OfferState.PENDING, expires_at__gt=timezone.now())
            .select_related("interaction", "interaction__contact", "queue").order_by("created_at", "pk"))


# --- who may send -------------------------------------------------------------------------------------------------


def is_supervisor(user) -> bool:
    """A supervisor holds change_interaction without being an agent of the workspace (agents hold
    change_interaction too, to end what they were given), or is a superuser."""
    return user.is_superuser or (user.has_perm(SUPERVISOR) and not user.has_perm(USE_WORKSPACE))


def agent_may_send(*, user, interaction: Interaction) -> bool:
    """API.md: on a queue routed by the server an agent sends only to an interaction assigned to them or
    whose conference they are in; supervisors anywhere in their tenants. Queues routed outside keep the
    rules of before (everyone with the rights)."""
    queue = queue_for_key(interaction.queue)
    if interaction.assigned_to_id is None and (queue is None or queue.routing != QueueRouting.WORKSPACE):
        return True
    if interaction.assigned_to_id == user.pk or is_supervisor(user):
        return True
    return ConferenceMember.objects.filter(interaction=interaction, agent=user).exists()


def agent_send_check(*, user, interaction: Interaction) -> None:
    if not agent_may_send(user=user, interaction=interaction):
        raise PermissionDenied(
            "This interaction is routed by the server and is not assigned to you (nor are you in its "
            "conference).", field="id")


# --- transfer and conference ---------------------------------------------------------------------------------------


def _workspace_agent(*, tenant_id: int, agent_id, field: str):
    """A user of the tenant who may be offered interactions; 400 naming `field` otherwise."""
    user = None
    if isinstance(agent_id, int) and not isinstance(agent_id, bool):
        user = _tenant_members(tenant_id).filter(pk=agent_id, is_active=True).distinct().first()
    if user is None:
        raise InvalidParameter(f"No user {agent_id!r} in this tenant.", field=field)
    if not user.has_perm(USE_WORKSPACE):
        raise InvalidParameter(f"User {user.get_username()} may not use the workspace (use_workspace).",
                               field=field)
    return user


def _locked_held(interaction_id: str, sender, *, conference_ok: bool = False) -> Interaction:
    interaction = (Interaction.objects.select_for_update(of=("self",)).select_related("channel")
                   .filter(pk=interaction_id).first())
    if interaction is None:
        raise NotFound("Unknown interaction.", field="id")
    if interaction.state == InteractionState.ENDED:
        raise Conflict("The interaction has ended.", field="id")
    held = interaction.assigned_to_id == sender.pk or (
        conference_ok and ConferenceMember.objects.filter(interaction=interaction, agent=sender).exists())
    if not held:
        raise Conflict("The interaction is not assigned to you.", field="id")
    return interaction


@dataclass(frozen=True)
class Transfer:
    interaction: Interaction
    offer: Offer | None  # to an agent
    queue: Queue | None  # to a queue: offered from there


def interaction_transfer(*, interaction_id: str, sender, agent_id=None, queue_key: str | None = None) -> Transfer:
    """Transfer (API.md `POST /api/interactions/{id}/transfer/`) to an agent (an offer of kind transfer) or
    to a queue routed by the server (it waits there): the interaction stays with the sender until the
    target accepts (Conflict when the sender does not hold it). A target outside the tenant, without
    use_workspace, the sender themselves or a queue not routed by the server: 400 naming `agent` or
    `queue`."""
    if (agent_id is None) == (queue_key is None):
        raise InvalidParameter("Name an agent or a queue (one of them).", field="agent")
    tenant_id = (Interaction.objects.filter(pk=interaction_id).values_list("channel__tenant_id", flat=True)
                 .first())
    if tenant_id is None:
        raise NotFound("Unknown interaction.", field="id")
    target = queue = None
    if agent_id is not None:
        target = _workspace_agent(tenant_id=tenant_id, agent_id=agent_id, field="agent")
        if target.pk == sender.pk:
            raise InvalidParameter("You hold the interaction already.", field="agent")
    else:
        queue = Queue.objects.filter(key=str(queue_key), tenant_id=tenant_id).first()
        if queue is None:
            raise InvalidParameter(f"Unknown queue {queue_key!r}.", field="queue")
        if queue.routing != QueueRouting.WORKSPACE:
            raise InvalidParameter(f"Queue {queue.key} is routed by an outside system.", field="queue")
    now = timezone.now()
    with transaction.atomic():
        interaction = _locked_held(interaction_id, sender)
        # A transfer replaces one still pending (the interaction is offered to one target at a time).
        replaced = _offers_close(Offer.objects.filter(TAKING, interaction=interaction), state=OfferState.WITHDRAWN,
                                 now=now)
        _capacity_freed(replaced)
        if target is not None:
            offer = _offered(Offer.objects.create(
                interaction=interaction, agent=target, from_agent=sender, kind=OfferKind.TRANSFER, created_at=now,
                expires_at=_expires(queue_for_key(interaction.queue), now)))
            if interaction.routing_queue_id is not None:
                interaction.routing_queue, interaction.queued_at = None, None
                interaction.save(update_fields=["routing_queue", "queued_at"])
            return Transfer(interaction, offer, None)
        interaction.routing_queue, interaction.queued_at = queue, now
        interaction.save(update_fields=["routing_queue", "queued_at"])
        offers_due([queue.pk])  # the dispatcher offers it from there
        return Transfer(interaction, None, queue)


def _conference_subtype_exists() -> bool:
    return BusinessAttributeValue.objects.filter(
        attribute__type=BusinessAttributeType.INTERACTION_SUBTYPE, name=CONFERENCE_SUBTYPE).exists()


def interaction_conference(*, interaction_id: str, sender, agent_id=None, group: str | None = None) -> Offer:
    """Invite another agent to a conference (API.md `POST /api/interactions/{id}/conference/`): an offer of
    subtype InternalConferenceInvite to `agent`, or, by agent group (WhatsApp guide: "request a conference
    via the Skill or Group option"), to the ready member of `group` idle longest among the agents of the
    queue the option `intercommunication.whatsappsession.queue` names (with the IW_RoutingBased* attached
    data). Once accepted both see and send messages. Oneself, a user outside the tenant or without
    use_workspace: 400 naming `agent`; no such option or queue: 400 naming `group`; the Interaction Subtype
    value missing, the sender not holding the interaction or nobody of the group ready: Conflict."""
    if (agent_id is None) == (group is None):
        raise InvalidParameter("Name an agent or an agent group (one of them).", field="agent")
    if agent_id is not None and agent_id == sender.pk:
        raise InvalidParameter("A conference is with another agent, not with yourself.", field="agent")
    channel_row = Interaction.objects.select_related("channel").filter(pk=interaction_id).first()
    if channel_row is None:
        raise NotFound("Unknown interaction.", field="id")
    tenant_id = channel_row.channel.tenant_id
    target = queue = None
    if agent_id is not None:
        target = _workspace_agent(tenant_id=tenant_id, agent_id=agent_id, field="agent")
    else:
        key = option_value(section=IW, name=CONFERENCE_QUEUE_OPTION, channel=channel_row.channel)
        queue = Queue.objects.filter(key=key, tenant_id=tenant_id, routing=QueueRouting.WORKSPACE).first() \
            if key else None
        if queue is None:
            raise InvalidParameter(
                f"A conference by group needs the option {CONFERENCE_QUEUE_OPTION} to name a queue of this "
                f"tenant routed by the server.", field="group")
    if not _conference_subtype_exists():
        raise Conflict(f"Create the value {CONFERENCE_SUBTYPE} of the Interaction Subtype business attribute "
                       f"first (WhatsApp guide, \"Other configuration\").", field="agent")
    now = timezone.now()
    with transaction.atomic():
        interaction = _locked_held(interaction_id, sender, conference_ok=True)
        inside = {interaction.assigned_to_id, *ConferenceMember.objects.filter(interaction=interaction)
                  .values_list("agent_id", flat=True)}
        if target is not None:
            if target.pk in inside:
                raise Conflict(f"{target.get_username()} is in the conversation already.", field="agent")
            try:
                with transaction.atomic():
                    return _offered(Offer.objects.create(
                        interaction=interaction, agent=target, from_agent=sender, kind=OfferKind.CONFERENCE,
                        subtype=CONFERENCE_SUBTYPE, created_at=now,
                        expires_at=_expires(queue_for_key(interaction.queue), now)))
            except IntegrityError as error:
                raise Conflict(f"{target.get_username()} has this interaction offered already.",
                               field="agent") from error
        candidates = list(_candidates(queue=queue, media=interaction.channel.media_type, group=group,
                                      exclude=inside - {None})[:5])
        offer = _offer_to_first_free(candidates, lambda chosen: _offered(Offer.objects.create(
            interaction=interaction, queue=queue, agent_id=chosen, from_agent=sender, kind=OfferKind.CONFERENCE,
            subtype=CONFERENCE_SUBTYPE, created_at=now, expires_at=_expires(queue, now))))
        if offer is None:
            raise Conflict(f"Nobody of group {group!r} is ready in queue {queue.key}.", field="group")
        interaction.user_data.update({
            "IW_RoutingBasedOriginalEmployeeId": sender.get_username(), "IW_RoutingBasedTargetId": group,
            "IW_RoutingBasedTargetType": "AgentGroup", "IW_RoutingBasedRequestType": "Conference",
        })
        interaction.save(update_fields=["user_data"])
        return offer


# --- notes ---------------------------------------------------------------------------------------------------------


def interaction_note_add(*, interaction: Interaction, author, text) -> InteractionNote:
    """A note on the interaction's history (the workspace's Note): kept, never sent to the customer. Empty,
    a NUL or lone surrogate, or over 64 KiB of UTF-8: 400 naming `text`."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidParameter("A note needs a text.", field="text")
    if broken := text_rule_broken(text):
        raise InvalidParameter(f"The text holds {broken}.", field="text")
    size = len(text.encode("utf-8"))
    if size > NOTE_MAX_BYTES:
        raise InvalidParameter(f"The note is {size} bytes (UTF-8); at most {NOTE_MAX_BYTES}.", field="text")
    return InteractionNote.objects.create(interaction=interaction, author=author, text=text)


def interaction_notes(*, interaction: Interaction) -> QuerySet:
    return InteractionNote.objects.filter(interaction=interaction).select_related("author").order_by(
        "created_at", "pk")
