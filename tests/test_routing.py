"""The server's own routing (services.routing; API.md, "Routing to agents"): offer order, capacity, nobody
ready, reject, timeout, transfer, conference, notes, who may send, and two accepts of one offer on a real
database. The API's doors: tests/test_routing_api.py."""

import threading
import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import OperationalError, connection
from django.test import TestCase
from django.utils import timezone

from channels_app.dispatcher import Dispatcher
from channels_app.errors import Conflict, InvalidFields, InvalidParameter, NotFound, PermissionDenied
from channels_app.models import (
    AgentState,
    BusinessAttributeValue,
    ConferenceMember,
    Delivery,
    Interaction,
    InteractionState,
    Message,
    Offer,
    OfferState,
    Queue,
    QueueRouting,
)
from channels_app.services import interactions, routing
from channels_app.services.roles import roles_ensure_default_groups
from tests.conftest import member, require_or_skip
from tests.factories import ChannelFactory, TenantFactory
from tests.workers import poll_until

# Committed for real (other threads' connections, the dispatcher). serialized_rollback, as every transactional
# test of the suite.
committed = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def committing(action):
    """`action` as if its transaction committed and the dispatcher, woken by its notification, then ran its
    offer step (services.routing.offers_make): the offers it asks for (an interaction entered a queue, an
    agent freed capacity) are made before the test looks."""
    def run(*args, **kwargs):
        with TestCase.captureOnCommitCallbacks(execute=True):
            done = action(*args, **kwargs)
        routing.offers_make()
        return done

    return run


customer_message_receive = committing(interactions.customer_message_receive)
interaction_close = committing(interactions.interaction_close)
agent_state_update = committing(routing.agent_state_update)
interaction_conference = committing(routing.interaction_conference)
interaction_note_add = committing(routing.interaction_note_add)
interaction_transfer = committing(routing.interaction_transfer)
offer_accept = committing(routing.offer_accept)
offer_reject = committing(routing.offer_reject)
queue_save = committing(routing.queue_save)
routing_sweep = committing(routing.routing_sweep)


def _queue(tenant, *agents, key="1:session-chat", routing=QueueRouting.WORKSPACE, timeout=30) -> Queue:
    return queue_save(queue=Queue(tenant=tenant, key=key, routing=routing, offer_timeout_seconds=timeout),
                      agents=list(agents))


def _agent(name, tenant, *, ready=True, capacity=3, idle_minutes=0):
    user = member(name, "WhatsApp agent", tenants=[tenant], is_staff=False)
    if ready:
        agent_state_update(user=user, ready={"whatsapp": True}, capacity=capacity)
        AgentState.objects.filter(pk=user.pk).update(idle_since=timezone.now() - timedelta(minutes=idle_minutes))
    return user


def _customer_writes(channel, client_id="15556667777", text="Hello") -> Interaction:
    message, _ = customer_message_receive(channel=channel, client_id=client_id, text=text)
    return message.interaction


def _pending(interaction) -> list[Offer]:
    return list(Offer.objects.filter(interaction=interaction, state=OfferState.PENDING))


# --- offers -----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_customers_first_message_is_offered_to_the_ready_agent_idle_longest(tenant, channel):
    # given three agents of the queue, one idle for 10 minutes, one for 30, one not ready
    recent = _agent("recent", tenant, idle_minutes=10)
    longest = _agent("longest", tenant, idle_minutes=30)
    away = _agent("away", tenant, ready=False)
    _queue(tenant, recent, longest, away)

    # when a customer writes
    interaction = _customer_writes(channel)

    # then one offer goes to the one idle longest
    [offer] = _pending(interaction)
    assert offer.agent == longest
    assert offer.queue.key == "1:session-chat"
    assert offer.expires_at > timezone.now() + timedelta(seconds=25)


@pytest.mark.django_db
def test_an_external_queue_behaves_as_before(tenant, channel):
    agent = _agent("agent-1", tenant)
    _queue(tenant, agent, routing=QueueRouting.EXTERNAL)

    interaction = _customer_writes(channel)

    assert not Offer.objects.exists()
    interaction.refresh_from_db()
    assert (interaction.routing_queue, interaction.assigned_to, interaction.state) == (None, None, "queued")


@pytest.mark.django_db
def test_accept_assigns_the_interaction_and_a_second_accept_is_a_conflict(tenant, channel):
    agent = _agent("agent-1", tenant)
    _queue(tenant, agent)
    interaction = _customer_writes(channel)
    [offer] = _pending(interaction)

    accepted = offer_accept(offer_id=offer.pk, user=agent)

    assert (accepted.assigned_to, accepted.state, accepted.routing_queue) == (agent, InteractionState.ACTIVE, None)
    with pytest.raises(Conflict, match="already taken"):
        offer_accept(offer_id=offer.pk, user=agent)
    # a later message of the customer stays with the agent: no new offer
    _customer_writes(channel, text="Still there?")
    assert _pending(interaction) == []


@pytest.mark.django_db
def test_another_agents_offer_does_not_exist_for_the_caller(tenant, channel):
    agent, other = _agent("agent-1", tenant), _agent("agent-2", tenant, ready=False)
    _queue(tenant, agent, other)
    [offer] = _pending(_customer_writes(channel))

    with pytest.raises(NotFound):
        offer_accept(offer_id=offer.pk, user=other)
    with pytest.raises(NotFound):
        offer_reject(offer_id=offer.pk, user=other)
    assert Offer.objects.get(pk=offer.pk).state == OfferState.PENDING


@pytest.mark.django_db
def test_with_nobody_ready_interactions_wait_first_come_first_served(tenant, channel):
    # given an agent of capacity 1 who is not ready, and two customers who wrote in turn
    agent = _agent("agent-1", tenant, ready=False)
    _queue(tenant, agent)
    first = _customer_writes(channel, client_id="15550000001")
    second = _customer_writes(channel, client_id="15550000002")
    assert not Offer.objects.exists()
    assert Queue.objects.get().waiting.count() == 2

    # when the agent becomes ready, with room for one
    agent_state_update(user=agent, ready={"whatsapp": True}, capacity=1)

    # then the first is offered, the second waits until the first is done
    assert [o.interaction_id for o in Offer.objects.all()] == [first.pk]
    offer_accept(offer_id=Offer.objects.get().pk, user=agent)
    assert _pending(second) == []
    interaction_close(interaction_id=first.pk)
    [offer] = _pending(second)
    assert offer.agent == agent


@pytest.mark.django_db
def test_an_agent_is_offered_no_more_than_their_capacity(tenant, channel):
    agent = _agent("agent-1", tenant, capacity=2)
    _queue(tenant, agent)

    for n in range(3):
        _customer_writes(channel, client_id=f"1555000000{n}")

    assert Offer.objects.filter(agent=agent, state=OfferState.PENDING).count() == 2
    # more capacity offers the third at once
    agent_state_update(user=agent, capacity=3)
    assert Offer.objects.filter(agent=agent, state=OfferState.PENDING).count() == 3


@pytest.mark.django_db
def test_an_agent_ready_for_another_media_is_not_offered(tenant, channel):
    agent = member("sms-only", "WhatsApp agent", tenants=[tenant])
    agent_state_update(user=agent, ready={"sms": True})
    _queue(tenant, agent)

    _customer_writes(channel)

    assert not Offer.objects.exists()


@pytest.mark.django_db
def test_reject_offers_the_interaction_to_another_agent_and_not_again_to_the_one_who_rejected(
        tenant, channel):
    first, second = _agent("first", tenant, idle_minutes=30), _agent("second", tenant, idle_minutes=10)
    _queue(tenant, first, second)
    interaction = _customer_writes(channel)
    [offer] = _pending(interaction)
    assert offer.agent == first

    offer_reject(offer_id=offer.pk, user=first)

    [again] = _pending(interaction)
    assert again.agent == second
    # the second rejects too: with nobody else ready it goes back to the first, who rejected it longest ago
    offer_reject(offer_id=again.pk, user=second)
    [third] = _pending(interaction)
    assert third.agent in (first, second)
    with pytest.raises(Conflict):
        offer_accept(offer_id=offer.pk, user=first)


@pytest.mark.django_db
def test_an_offer_not_answered_in_time_expires_and_goes_to_the_next_agent(tenant, channel):
    first, second = _agent("first", tenant, idle_minutes=30), _agent("second", tenant, idle_minutes=10)
    _queue(tenant, first, second, timeout=5)
    interaction = _customer_writes(channel)
    [offer] = _pending(interaction)

    swept = routing_sweep(now=timezone.now() + timedelta(seconds=6))

    assert swept["expired"] == 1
    assert Offer.objects.get(pk=offer.pk).state == OfferState.EXPIRED
    [next_offer] = _pending(interaction)
    assert next_offer.agent == second
    with pytest.raises(Conflict, match="expired"):
        offer_accept(offer_id=offer.pk, user=first)


@pytest.mark.django_db
def test_an_ended_interaction_withdraws_its_offer(tenant, channel):
    agent = _agent("agent-1", tenant)
    _queue(tenant, agent)
    interaction = _customer_writes(channel)
    [offer] = _pending(interaction)

    interaction_close(interaction_id=interaction.pk)

    assert Offer.objects.get(pk=offer.pk).state == OfferState.WITHDRAWN
    with pytest.raises(Conflict, match="withdrawn"):
        offer_accept(offer_id=offer.pk, user=agent)


@pytest.mark.django_db
def test_a_reply_to_an_invitation_enters_the_queue(tenant, channel):
    from tests.factories import InteractionFactory

    agent = _agent("agent-1", tenant)
    _queue(tenant, agent)
    invitation = InteractionFactory(channel=channel, client_id="15556667777", outbound=True)
    assert not Offer.objects.exists()

    replied = _customer_writes(channel)

    assert replied.pk == invitation.pk
    assert [o.interaction_id for o in _pending(replied)] == [invitation.pk]


# --- agents' state --------------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("changes", "field"), [
    ({"capacity": 0}, "capacity"), ({"capacity": 21}, "capacity"), ({"capacity": "3"}, "capacity"),
    ({"ready": {"fax": True}}, "ready"), ({"ready": {"whatsapp": "yes"}}, "ready"), ({"ready": ["whatsapp"]}, "ready"),
])
def test_bad_agent_state_is_refused_naming_the_field_and_nothing_changes(tenant, changes, field):
    agent = _agent("agent-1", tenant, capacity=4)

    with pytest.raises(InvalidFields) as refused:
        agent_state_update(user=agent, **changes)

    assert field in refused.value.errors
    assert (AgentState.objects.get(pk=agent.pk).capacity, AgentState.objects.get(pk=agent.pk).ready) == (
        4, {"whatsapp": True})


@pytest.mark.django_db
def test_agent_groups_hold_use_workspace_and_the_conference_subtype_is_seeded(db):
    roles_ensure_default_groups()

    for name in ("WhatsApp agent", "WhatsApp senior agent"):
        codenames = set(Group.objects.get(name=name).permissions.values_list("codename", flat=True))
        assert "use_workspace" in codenames
    assert "use_workspace" not in set(Group.objects.get(name="ESP client").permissions.values_list(
        "codename", flat=True))
    assert BusinessAttributeValue.objects.filter(attribute__name="Interaction Subtype",
                                                 name="InternalConferenceInvite").exists()


@pytest.mark.django_db
def test_queue_agents_must_be_members_of_its_tenant_and_its_key_of_it(tenant):
    stranger = member("stranger", "WhatsApp agent", tenants=[TenantFactory(id=2, name="Other")])

    with pytest.raises(InvalidFields) as refused:
        queue_save(queue=Queue(tenant=tenant, key="2:session-chat"), agents=[stranger])

    assert set(refused.value.errors) == {"key", "agents"}
    assert not Queue.objects.exists()


# --- transfer, conference, notes --------------------------------------------------------------------------------------


@pytest.fixture
def held(tenant, channel):
    """An interaction of a workspace queue, accepted by `sender`; `colleague` is ready too."""
    sender = _agent("sender", tenant, idle_minutes=30)
    colleague = _agent("colleague", tenant, idle_minutes=10)
    _queue(tenant, sender, colleague)
    interaction = _customer_writes(channel)
    [offer] = _pending(interaction)
    offer_accept(offer_id=offer.pk, user=sender)
    return interaction, sender, colleague


@pytest.mark.django_db
def test_a_transfer_stays_with_the_sender_until_the_target_accepts(held):
    interaction, sender, colleague = held

    transfer = interaction_transfer(interaction_id=interaction.pk, sender=sender, agent_id=colleague.pk)

    assert transfer.offer.agent == colleague and transfer.offer.kind == "transfer"
    assert Interaction.objects.get(pk=interaction.pk).assigned_to == sender
    offer_accept(offer_id=transfer.offer.pk, user=colleague)
    assert Interaction.objects.get(pk=interaction.pk).assigned_to == colleague
    # the sender does not hold it any more: another transfer from them is a conflict
    with pytest.raises(Conflict):
        interaction_transfer(interaction_id=interaction.pk, sender=sender, agent_id=colleague.pk)


@pytest.mark.django_db
def test_a_rejected_transfer_leaves_the_interaction_with_the_sender(held):
    interaction, sender, colleague = held
    transfer = interaction_transfer(interaction_id=interaction.pk, sender=sender, agent_id=colleague.pk)

    offer_reject(offer_id=transfer.offer.pk, user=colleague)

    assert Interaction.objects.get(pk=interaction.pk).assigned_to == sender
    assert _pending(interaction) == []


@pytest.mark.django_db
def test_a_transfer_to_a_queue_is_offered_from_there_to_another_agent(tenant, held):
    interaction, sender, colleague = held
    other = _queue(tenant, sender, colleague, key="1:billing")

    interaction_transfer(interaction_id=interaction.pk, sender=sender, queue_key="1:billing")

    [offer] = _pending(interaction)
    assert (offer.agent, offer.queue) == (colleague, other)
    offer_accept(offer_id=offer.pk, user=colleague)
    moved = Interaction.objects.get(pk=interaction.pk)
    assert (moved.assigned_to, moved.queue) == (colleague, "1:billing")


@pytest.mark.django_db
def test_bad_transfers_are_refused_naming_the_field(tenant, held):
    interaction, sender, colleague = held
    outsider = member("outsider", "WhatsApp agent", tenants=[TenantFactory(id=2, name="Other")])
    no_workspace = member("strategy", "ESP client", tenants=[tenant])
    _queue(TenantFactory(id=3, name="Third"), key="3:session-chat")

    for kwargs, field in [({"agent_id": outsider.pk}, "agent"), ({"agent_id": no_workspace.pk}, "agent"),
                          ({"agent_id": sender.pk}, "agent"), ({"agent_id": 999999}, "agent"),
                          ({"queue_key": "3:session-chat"}, "queue"), ({}, "agent")]:
        with pytest.raises(InvalidParameter) as refused:
            interaction_transfer(interaction_id=interaction.pk, sender=sender, **kwargs)
        assert refused.value.field == field, kwargs
    assert _pending(interaction) == []
    # a transfer by someone who does not hold it
    with pytest.raises(Conflict):
        interaction_transfer(interaction_id=interaction.pk, sender=colleague, agent_id=sender.pk)


@pytest.mark.django_db
def test_a_conference_invite_is_an_internal_conference_offer_and_then_both_may_send(held):
    from channels_app.services.routing import agent_may_send

    interaction, sender, colleague = held
    assert not agent_may_send(user=colleague, interaction=interaction)

    offer = interaction_conference(interaction_id=interaction.pk, sender=sender, agent_id=colleague.pk)

    assert (offer.kind, offer.subtype, offer.agent) == ("conference", "InternalConferenceInvite", colleague)
    offer_accept(offer_id=offer.pk, user=colleague)
    assert ConferenceMember.objects.filter(interaction=interaction, agent=colleague).exists()
    assert Interaction.objects.get(pk=interaction.pk).assigned_to == sender
    interaction.refresh_from_db()
    assert agent_may_send(user=colleague, interaction=interaction)
    assert agent_may_send(user=sender, interaction=interaction)


@pytest.mark.django_db
def test_a_conference_with_oneself_is_refused(held):
    interaction, sender, _ = held

    with pytest.raises(InvalidParameter) as refused:
        interaction_conference(interaction_id=interaction.pk, sender=sender, agent_id=sender.pk)

    assert refused.value.field == "agent"
    assert not Offer.objects.filter(kind="conference").exists()


@pytest.mark.django_db
def test_a_conference_by_group_goes_through_the_queue_the_option_names(tenant, channel, held):
    from channels_app.services.options import option_set

    interaction, sender, colleague = held
    with pytest.raises(InvalidParameter) as refused:  # the option is not set
        interaction_conference(interaction_id=interaction.pk, sender=sender, group="WhatsApp agent")
    assert refused.value.field == "group"
    senior = member("senior", "WhatsApp senior agent", tenants=[tenant])
    agent_state_update(user=senior, ready={"whatsapp": True})
    _queue(tenant, senior, colleague, key="1:conference")
    option_set(section="interaction-workspace", name="intercommunication.whatsappsession.queue",
               value="1:conference")

    offer = interaction_conference(interaction_id=interaction.pk, sender=sender, group="WhatsApp senior agent")

    assert (offer.agent, offer.subtype, offer.queue.key) == (senior, "InternalConferenceInvite", "1:conference")
    assert Interaction.objects.get(pk=interaction.pk).user_data["IW_RoutingBasedTargetType"] == "AgentGroup"


@pytest.mark.django_db
def test_notes_are_history_never_sent(held):
    interaction, sender, _ = held
    messages_before, deliveries_before = Message.objects.count(), Delivery.objects.count()

    note = interaction_note_add(interaction=interaction, author=sender, text="Customer prefers e-mail.")

    assert note.pk and interaction.notes.get().text == "Customer prefers e-mail."
    assert (Message.objects.count(), Delivery.objects.count()) == (messages_before, deliveries_before)
    for text in ["bad\x00text", "x" * (64 * 1024 + 1), "é" * (32 * 1024 + 1), ""]:
        with pytest.raises(InvalidParameter) as refused:
            interaction_note_add(interaction=interaction, author=sender, text=text)
        assert refused.value.field == "text"
    assert interaction.notes.count() == 1
    assert interaction_note_add(interaction=interaction, author=sender, text="x" * 64 * 1024)


# --- who may send --------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_on_a_workspace_queue_only_the_assignee_or_a_supervisor_sends(tenant, held):
    from channels_app.selectors import tenant_ids_for
    from channels_app.services.agent_messages import agent_message_send

    interaction, sender, colleague = held
    supervisor = member("supervisor", tenants=[tenant])
    from django.contrib.auth.models import Permission

    supervisor.user_permissions.add(*Permission.objects.filter(
        codename__in=["view_interaction", "change_interaction", "add_message"]))

    def send(user):
        return agent_message_send(tenant_ids=tenant_ids_for(user), interaction_id=interaction.pk,
                                  admit=lambda _: {"text": "Hello"}, sender=user)

    with pytest.raises(PermissionDenied):
        send(colleague)
    assert send(sender).message.text == "Hello"
    assert send(type(supervisor).objects.get(pk=supervisor.pk)).message.text == "Hello"


@pytest.mark.django_db
def test_on_an_external_queue_every_agent_sends_as_before(tenant, channel):
    from channels_app.selectors import tenant_ids_for
    from channels_app.services.agent_messages import agent_message_send

    agent = _agent("agent-1", tenant)
    _queue(tenant, agent, routing=QueueRouting.EXTERNAL)
    interaction = _customer_writes(channel)

    sent = agent_message_send(tenant_ids=tenant_ids_for(agent), interaction_id=interaction.pk,
                              admit=lambda _: {"text": "Hello"}, sender=agent)

    assert sent.message.text == "Hello"


# --- on a real database, across threads and processes -------------------------------------------------------------


def _postgresql_only():
    # The suite's SQLite is one in-memory database shared by threads, locked by table: not the embedded
    # default's file (WAL, immediate transactions) that production runs.
    require_or_skip(connection.vendor == "postgresql", "threads racing on one database: PostgreSQL's")


def _tenant_channel():
    tenant = TenantFactory(id=1, name="Environment")
    channel = ChannelFactory(channel_id="channel-whatsapp-REAL", tenant=tenant, media_type="whatsapp",
                             transport="simulator", business_id="19251112222", endpoints=["1:session-chat"],
                             inbound_route_by_call="1:session-chat")
    return tenant, channel


@committed
def test_two_accepts_of_one_offer_at_once_assign_it_once():
    _postgresql_only()
    tenant, channel = _tenant_channel()
    agent = _agent("agent-1", tenant)
    _queue(tenant, agent)
    interaction = _customer_writes(channel)  # committed: the offer is made after the commit
    [offer] = _pending(interaction)
    start = threading.Barrier(8)
    outcomes = []

    def accept():
        try:
            start.wait()
            offer_accept(offer_id=offer.pk, user=agent)
            outcomes.append("accepted")
        except Conflict:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=accept) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["accepted"] + ["conflict"] * 7
    assert Offer.objects.get(pk=offer.pk).state == OfferState.ACCEPTED
    assert Interaction.objects.get(pk=interaction.pk).assigned_to == agent


@committed
def test_two_agents_racing_for_interactions_never_take_one_twice_nor_exceed_capacity():
    _postgresql_only()
    tenant, channel = _tenant_channel()
    agents = [_agent(f"agent-{n}", tenant, capacity=2) for n in range(3)]
    _queue(tenant, *agents)
    customers = [_customer_writes(channel, client_id=f"155500000{n:02d}") for n in range(10)]
    errors = []

    def work(agent):
        try:
            for _ in range(20):
                for offer in Offer.objects.filter(agent=agent, state=OfferState.PENDING):
                    try:
                        offer_accept(offer_id=offer.pk, user=agent)
                    except Conflict:
                        pass
                routing_sweep()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(agent,)) for agent in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assigned = Interaction.objects.filter(pk__in=[c.pk for c in customers], assigned_to__isnull=False)
    assert assigned.count() == 6  # three agents of capacity 2
    for agent in agents:
        assert assigned.filter(assigned_to=agent).count() == 2
    assert Offer.objects.filter(state=OfferState.ACCEPTED).count() == 6
    assert Offer.objects.filter(state=OfferState.PENDING).count() == 0


@committed
def test_the_dispatcher_expires_offers_and_moves_them_on():
    tenant, channel = _tenant_channel()
    first, second = _agent("first", tenant, idle_minutes=30), _agent("second", tenant, idle_minutes=10)
    _queue(tenant, first, second, timeout=1)
    interaction = _customer_writes(channel)
    [offer] = _pending(interaction)
    assert offer.agent == first
    dispatcher = Dispatcher(threads=1, poll_seconds=0.2, sweep_seconds=0.2)
    running = threading.Thread(target=dispatcher.run, kwargs={"install_signals": False})
    running.start()
    try:
        moved = poll_until(lambda: _patient(lambda: Offer.objects.filter(
            interaction=interaction, agent=second, state=OfferState.PENDING).first()), 10, "the next offer")
    finally:
        dispatcher.stop()
        running.join(timeout=10)

    assert Offer.objects.get(pk=offer.pk).state == OfferState.EXPIRED
    assert moved.expires_at > offer.expires_at


# --- who makes the offers: the dispatcher's loop ------------------------------------------------------------------


@committed
def test_a_request_that_gives_a_queue_work_makes_no_offer_and_notifies_the_dispatcher_at_its_commit():
    _postgresql_only()
    import psycopg

    tenant, channel = _tenant_channel()
    agent = _agent("agent-1", tenant, ready=False)
    queue = _queue(tenant, agent)
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}, autocommit=True) as listener:
        listener.execute(f"LISTEN {routing.OFFERS_CHANNEL}")

        # a customer's first message (its own transaction, committed), then the agent becoming ready
        message, _ = interactions.customer_message_receive(channel=channel, client_id="15556667777", text="Hello")
        assert not Offer.objects.exists()  # the request only records the work: the interaction waits
        routing.agent_state_update(user=agent, ready={"whatsapp": True})
        assert not Offer.objects.exists()
        heard = [(n.channel, n.payload) for n in listener.notifies(timeout=5, stop_after=2)]

    assert heard == [(routing.OFFERS_CHANNEL, str(queue.pk))] * 2
    # the dispatcher's offer step makes the offer
    assert routing.offers_make().made == 1
    assert [(o.interaction_id, o.agent) for o in Offer.objects.all()] == [(message.interaction_id, agent)]


@committed
def test_a_running_dispatcher_offers_at_once_when_a_customer_writes_an_agent_is_ready_or_rejects():
    tenant, channel = _tenant_channel()
    first, second = _agent("first", tenant, idle_minutes=30), _agent("second", tenant, ready=False)
    _queue(tenant, first, second)
    on_postgresql = connection.vendor == "postgresql"
    # On PostgreSQL a 30 s poll and sweep: only the notification can wake it in time. SQLite: it polls.
    dispatcher = Dispatcher(threads=1, poll_seconds=30 if on_postgresql else 0.1, sweep_seconds=30)
    running = threading.Thread(target=dispatcher.run, kwargs={"install_signals": False})
    running.start()
    try:
        if on_postgresql:
            poll_until(dispatcher.listening.is_set, 10, "the dispatcher to listen")

        def offered(interaction, agent):
            return poll_until(lambda: _patient(lambda: Offer.objects.filter(
                interaction=interaction, agent=agent, state=OfferState.PENDING).first()), 5, f"an offer to {agent}")

        # a customer writes: offered to the one ready
        interaction = _patient(lambda: routing_free_write(channel))
        offer = offered(interaction, first)
        # the other becomes ready, the first rejects: offered to the other
        _patient(lambda: routing.agent_state_update(user=second, ready={"whatsapp": True}))
        _patient(lambda: routing.offer_reject(offer_id=offer.pk, user=first))
        offered(interaction, second)
        # a second customer, while the second agent holds the first's offer: to the first again
        offered(_patient(lambda: routing_free_write(channel, client_id="15550000002")), first)
    finally:
        dispatcher.stop()
        running.join(timeout=10)
    assert not running.is_alive()


def _patient(action):
    """`action`, tried again while a table is locked by the dispatcher's thread on the suite's SQLite (one
    in-memory database with a shared cache: a locked table fails at once, there is no busy timeout as on
    the embedded default's file). On PostgreSQL: `action`."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return action()
        except OperationalError as error:
            if connection.vendor != "sqlite" or "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)  # the other thread's transaction is a few milliseconds


def routing_free_write(channel, client_id="15556667777") -> Interaction:
    """A customer's message as the web request takes it: committed, nothing run after it."""
    message, _ = interactions.customer_message_receive(channel=channel, client_id=client_id, text="Hello")
    return message.interaction


@committed
def test_two_dispatchers_side_by_side_offer_first_come_first_served_once_each_within_capacity():
    _postgresql_only()
    tenant, channel = _tenant_channel()
    agents = [_agent(f"agent-{n}", tenant, ready=False) for n in range(3)]
    _queue(tenant, *agents)
    # ten customers waiting, nobody ready
    waiting = [routing_free_write(channel, client_id=f"155500000{n:02d}") for n in range(10)]
    for n, interaction in enumerate(waiting):
        Interaction.objects.filter(pk=interaction.pk).update(queued_at=timezone.now() - timedelta(seconds=60 - n))
    for agent in agents:  # room for seven in all
        routing.agent_state_update(user=agent, ready={"whatsapp": True}, capacity=3 if agent == agents[0] else 2)
    start = threading.Barrier(4)
    made, errors = [], []

    def dispatcher():
        try:
            start.wait()
            for _ in range(5):
                made.append(routing.offers_make().made)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    offers = list(Offer.objects.all())
    assert sum(made) == len(offers) == 7
    # each interaction offered once, the seven that came first
    assert sorted(o.interaction_id for o in offers) == sorted(i.pk for i in waiting[:7])
    assert [sum(o.agent_id == agent.pk for o in offers) for agent in agents] == [3, 2, 2]


@pytest.mark.slow
@committed
def test_a_dispatcher_killed_mid_run_offers_what_waits_when_it_starts_again(tmp_path):
    from tests.workers import DispatcherProcess, require_shared_database

    require_shared_database()
    tenant, channel = _tenant_channel()
    first, second = _agent("first", tenant, idle_minutes=30, capacity=1), _agent("second", tenant, capacity=1)
    _queue(tenant, first, second)
    dispatcher = DispatcherProcess(tmp_path / "dispatcher.log")
    try:
        dispatcher.wait_ready()
        one = routing_free_write(channel, client_id="15550000001")
        offer = poll_until(lambda: Offer.objects.filter(interaction=one, agent=first).first(), 10, "the offer")

        # the dispatcher dies (SIGKILL); meanwhile a second customer writes and the first agent rejects:
        # their notifications go unheard
        dispatcher.kill()
        two = routing_free_write(channel, client_id="15550000002")
        routing.offer_reject(offer_id=offer.pk, user=first)
        assert _pending(one) == [] and _pending(two) == []

        # started again, it offers what waits: the first customer to the other agent, the second to the first
        dispatcher = DispatcherProcess(tmp_path / "dispatcher-2.log")
        dispatcher.wait_ready()
        poll_until(lambda: len(Offer.objects.filter(state=OfferState.PENDING)) == 2, 10, "both offers")
    finally:
        dispatcher.stop()
    assert [o.agent for o in _pending(one)] == [second]
    assert [o.agent for o in _pending(two)] == [first]
