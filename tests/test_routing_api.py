"""The routing endpoints of the contract (API.md, "Routing to agents"): queues, the agent's state and offers,
accept and reject, transfer, conference and notes, with the customer writing on /nexus. The rules behind
them: tests/test_routing.py."""

import hashlib
import hmac
import json

import pytest
from django.test import TestCase
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from channels_app.models import Delivery, Interaction, Message, Offer, OfferState, Queue
from channels_app.services.routing import offers_make
from tests.conftest import member
from tests.factories import ChannelFactory, TenantFactory

SECRET = "channel-secret"


class Client:
    """An API client whose requests commit as in production, and after each the dispatcher's offer step
    (services.routing.offers_make, which the request's notification wakes): the offers it asks for are made
    before the answer is looked at."""

    def __init__(self, user):
        self.user = user
        self.api = APIClient()
        self.api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")

    def __getattr__(self, method):
        def call(path, body=None, **extra):
            with TestCase.captureOnCommitCallbacks(execute=True):
                response = getattr(self.api, method)(path, body, format="json", **extra)
            offers_make()
            return response

        return call


@pytest.fixture
def whatsapp(channel):
    channel.secret = SECRET
    channel.save()
    return channel


def customer_writes(channel, text="Hello, my bill is wrong", client="15556667777", message_id="m-1"):
    body = json.dumps({"messages": [{
        "type": "Text", "text": text,
        "channel": {"messageId": message_id, "from": {"id": client, "nickname": "Ann"},
                    "to": {"id": channel.business_id}},
    }]}).encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = APIClient().post(f"/nexus/v3/channels/{channel.channel_id}/messages", body,
                                    content_type="application/json", HTTP_X_HUB_SIGNATURE=f"sha1={signature}")
    assert response.status_code == 200, response.content
    offers_make()  # the dispatcher's offer step, which the request's notification wakes
    return Interaction.objects.filter(channel=channel, client_id=client).latest("created_at")


@pytest.fixture
def admin_api(tenant):
    return Client(member("admin", "Administrator", tenants=[tenant]))


@pytest.fixture
def agents(tenant):
    """Two agents of tenant 1 and their clients."""
    return [Client(member(name, "WhatsApp agent", tenants=[tenant], is_staff=False)) for name in ("ann", "bob")]


@pytest.fixture
def workspace_queue(admin_api, agents):
    response = admin_api.post("/api/queues/", {"key": "1:session-chat", "routing": "workspace",
                                               "offer_timeout_seconds": 20,
                                               "agents": [agent.user.pk for agent in agents]})
    assert response.status_code == 201, response.content
    return response.json()


def ready(client, **extra):
    response = client.patch("/api/agents/me/", {"ready": {"whatsapp": True}, **extra})
    assert response.status_code == 200, response.content
    return response.json()


# --- queues --------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_queue_is_created_read_and_shows_what_waits(admin_api, agents, whatsapp, workspace_queue):
    assert workspace_queue == {"key": "1:session-chat", "tenant": 1, "routing": "workspace",
                               "offer_timeout_seconds": 20, "agents": [a.user.pk for a in agents], "waiting": 0,
                               "oldest_waiting_seconds": None}

    customer_writes(whatsapp)  # nobody is ready: it waits

    shown = admin_api.get("/api/queues/1:session-chat/").json()
    assert shown["waiting"] == 1 and shown["oldest_waiting_seconds"] >= 0
    assert admin_api.get("/api/queues/").json()["results"][0]["waiting"] == 1


@pytest.mark.django_db
def test_the_default_routing_is_external(admin_api):
    response = admin_api.post("/api/queues/", {"key": "1:billing"})

    assert response.status_code == 201
    assert (response.json()["routing"], response.json()["offer_timeout_seconds"]) == ("external", 30)


@pytest.mark.django_db
def test_a_queue_key_of_another_tenant_is_not_found(admin_api, tenant):
    other = TenantFactory(id=2, name="Other")
    Queue.objects.create(tenant=other, key="2:session-chat")

    assert admin_api.get("/api/queues/2:session-chat/").status_code == 404
    assert admin_api.patch("/api/queues/2:session-chat/", {"routing": "workspace"}).status_code == 404
    assert admin_api.delete("/api/queues/2:session-chat/").status_code == 404
    assert Queue.objects.get(key="2:session-chat").routing == "external"
    assert admin_api.post("/api/queues/", {"key": "2:billing"}).status_code == 400  # not a tenant of the caller


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "field"), [
    ({"key": "session-chat"}, "key"), ({"key": "1:x", "routing": "genesys"}, "routing"),
    ({"key": "1:x", "offer_timeout_seconds": 0}, "offer_timeout_seconds"),
])
def test_a_bad_queue_is_refused_naming_the_field(admin_api, body, field):
    response = admin_api.post("/api/queues/", body)

    assert response.status_code == 400
    assert field in response.json()
    assert not Queue.objects.exists()


@pytest.mark.django_db
def test_queue_agents_of_another_tenant_are_refused(admin_api):
    stranger = member("stranger", "WhatsApp agent", tenants=[TenantFactory(id=2, name="Other")])

    response = admin_api.post("/api/queues/", {"key": "1:x", "agents": [stranger.pk]})

    assert response.status_code == 400 and "agents" in response.json()
    assert not Queue.objects.exists()


# --- the agent's state ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_agent_reads_and_changes_their_state(agents):
    ann = agents[0]

    assert ann.get("/api/agents/me/").json() == {
        "ready": {"whatsapp": False, "abc": False, "sms": False, "email": False}, "capacity": 3, "assigned": 0}
    changed = ann.patch("/api/agents/me/", {"ready": {"whatsapp": True, "sms": True}, "capacity": 5}).json()
    assert changed == {"ready": {"whatsapp": True, "abc": False, "sms": True, "email": False}, "capacity": 5,
                       "assigned": 0}
    assert ann.patch("/api/agents/me/", {"ready": {"sms": False}}).json()["ready"]["whatsapp"] is True


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "field"), [
    ({"capacity": 0}, "capacity"), ({"capacity": 21}, "capacity"), ({"ready": {"fax": True}}, "ready"),
    ({"ready": {"whatsapp": "yes"}}, "ready"), ({"colour": "red"}, "colour"),
    ([[], []], "non_field_errors"),  # not an object at all (found by the fuzzer)
])
def test_bad_agent_state_is_400_naming_the_field(agents, body, field):
    ann = agents[0]

    response = ann.patch("/api/agents/me/", body)

    assert response.status_code == 400
    assert field in response.json()
    assert ann.get("/api/agents/me/").json()["capacity"] == 3


@pytest.mark.django_db
def test_the_agent_endpoints_need_use_workspace(tenant):
    strategy = Client(member("strategy", "ESP client", tenants=[tenant]))

    assert strategy.get("/api/agents/me/").status_code == 403
    assert strategy.get("/api/agents/me/offers/").status_code == 403


# --- offers --------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_customer_message_is_offered_accepted_and_assigned(agents, whatsapp, workspace_queue):
    ann, bob = agents
    ready(ann)

    interaction = customer_writes(whatsapp)

    [offer] = ann.get("/api/agents/me/offers/").json()
    assert offer["interaction"] == interaction.pk and offer["queue"] == "1:session-chat"
    assert offer["contact"] == interaction.contact_id and offer["preview"] == "Hello, my bill is wrong"
    assert offer["expires_at"] and offer["kind"] == "route"
    assert bob.post(f"/api/offers/{offer['id']}/accept/").status_code == 404  # another agent's offer
    accepted = ann.post(f"/api/offers/{offer['id']}/accept/")
    assert accepted.status_code == 200
    assert (accepted.json()["assigned_to"], accepted.json()["state"]) == (ann.user.pk, "active")
    again = ann.post(f"/api/offers/{offer['id']}/accept/")
    assert again.status_code == 409
    assert ann.get("/api/agents/me/").json()["assigned"] == 1
    assert ann.get("/api/agents/me/offers/").json() == []


@pytest.mark.django_db
def test_a_rejected_offer_goes_to_the_other_agent(agents, whatsapp, workspace_queue):
    ann, bob = agents
    ready(ann)
    ready(bob)
    customer_writes(whatsapp)
    first = Offer.objects.get(state=OfferState.PENDING)
    first_client, other = (ann, bob) if first.agent == ann.user else (bob, ann)

    response = first_client.post(f"/api/offers/{first.pk}/reject/")

    assert response.status_code == 200 and response.json()["id"] == first.pk
    [moved] = other.get("/api/agents/me/offers/").json()
    assert moved["interaction"] == first.interaction_id
    assert first_client.post(f"/api/offers/{first.pk}/reject/").status_code == 409


@pytest.mark.django_db
def test_an_expired_offer_is_409(agents, whatsapp, workspace_queue):
    from datetime import timedelta

    from django.utils import timezone

    ann = agents[0]
    ready(ann)
    customer_writes(whatsapp)
    offer = Offer.objects.get()
    Offer.objects.filter(pk=offer.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = ann.post(f"/api/offers/{offer.pk}/accept/")

    assert response.status_code == 409 and "expired" in response.json()["detail"]
    assert Interaction.objects.get(pk=offer.interaction_id).assigned_to is None


# --- who may send, transfer, conference, notes ---------------------------------------------------------------------


@pytest.fixture
def accepted(agents, whatsapp, workspace_queue):
    """An interaction accepted by ann; bob is ready."""
    ann, bob = agents
    ready(ann)
    interaction = customer_writes(whatsapp)
    ann.post(f"/api/offers/{Offer.objects.get().pk}/accept/")
    ready(bob)
    return interaction


@pytest.mark.django_db
def test_only_the_assignee_sends_on_a_workspace_queue(agents, accepted):
    ann, bob = agents

    assert bob.post(f"/api/interactions/{accepted.pk}/messages/", {"text": "Hi"}).status_code == 403
    assert ann.post(f"/api/interactions/{accepted.pk}/messages/", {"text": "Hi"}).status_code == 202


@pytest.mark.django_db
def test_transfer_to_an_agent_stays_with_the_sender_until_accepted(agents, accepted):
    ann, bob = agents

    assert bob.post(f"/api/interactions/{accepted.pk}/transfer/", {"agent": ann.user.pk}).status_code == 409
    response = ann.post(f"/api/interactions/{accepted.pk}/transfer/", {"agent": bob.user.pk})

    assert response.status_code == 202
    assert response.json()["agent"] == bob.user.pk and response.json()["queue"] is None
    assert ann.get(f"/api/interactions/{accepted.pk}/").json()["assigned_to"] == ann.user.pk
    [offer] = bob.get("/api/agents/me/offers/").json()
    assert offer["kind"] == "transfer" and offer["from_agent"] == ann.user.pk
    assert bob.post(f"/api/offers/{offer['id']}/accept/").json()["assigned_to"] == bob.user.pk


@pytest.mark.django_db
def test_bad_transfer_targets_are_400_naming_the_field(tenant, agents, accepted):
    ann, _ = agents
    outsider = member("outsider", "WhatsApp agent", tenants=[TenantFactory(id=2, name="Other")])
    strategy = member("strategy", "ESP client", tenants=[tenant])

    for body, field in [({"agent": outsider.pk}, "agent"), ({"agent": strategy.pk}, "agent"),
                        ({"queue": "1:unknown"}, "queue"), ({}, "agent")]:
        response = ann.post(f"/api/interactions/{accepted.pk}/transfer/", body)
        assert response.status_code == 400 and field in response.json(), (body, response.content)
    assert not Offer.objects.filter(kind="transfer").exists()


@pytest.mark.django_db
def test_a_conference_invite_has_the_internal_conference_subtype(agents, accepted):
    ann, bob = agents

    oneself = ann.post(f"/api/interactions/{accepted.pk}/conference/", {"agent": ann.user.pk})
    assert oneself.status_code == 400 and "agent" in oneself.json()
    response = ann.post(f"/api/interactions/{accepted.pk}/conference/", {"agent": bob.user.pk})

    assert response.status_code == 202 and response.json()["subtype"] == "InternalConferenceInvite"
    bob.post(f"/api/offers/{response.json()['id']}/accept/")
    assert bob.post(f"/api/interactions/{accepted.pk}/messages/", {"text": "Hi, I joined"}).status_code == 202
    assert ann.post(f"/api/interactions/{accepted.pk}/messages/", {"text": "Thanks"}).status_code == 202


@pytest.mark.django_db
def test_notes_are_kept_never_sent(agents, accepted):
    ann, _ = agents
    before = (Message.objects.count(), Delivery.objects.count())

    response = ann.post(f"/api/interactions/{accepted.pk}/notes/", {"text": "Wants a call back on Monday."})

    assert response.status_code == 201
    assert response.json()["text"] == "Wants a call back on Monday." and response.json()["author"] == "ann"
    assert [n["text"] for n in ann.get(f"/api/interactions/{accepted.pk}/notes/").json()] == [
        "Wants a call back on Monday."]
    assert (Message.objects.count(), Delivery.objects.count()) == before
    for text in ["with \x00 inside", "x" * (64 * 1024 + 1)]:
        refused = ann.post(f"/api/interactions/{accepted.pk}/notes/", {"text": text})
        assert refused.status_code == 400 and "text" in refused.json()
    assert accepted.notes.count() == 1


@pytest.mark.django_db
def test_another_tenants_interaction_is_not_found_for_routing_doors(agents, accepted):
    ann, _ = agents
    other = ChannelFactory(channel_id="other", tenant=TenantFactory(id=2, name="Other"), media_type="whatsapp")
    from tests.factories import InteractionFactory

    hidden = InteractionFactory(channel=other, queue="2:session-chat")

    for path, body in [("transfer", {"agent": ann.user.pk}), ("conference", {"agent": ann.user.pk}),
                       ("notes", {"text": "x"})]:
        assert ann.post(f"/api/interactions/{hidden.pk}/{path}/", body).status_code == 404
    assert ann.get(f"/api/interactions/{hidden.pk}/notes/").status_code == 404


@pytest.mark.django_db
def test_a_new_session_an_agent_starts_on_a_workspace_queue_is_theirs(agents, accepted, whatsapp):
    ann, bob = agents
    interaction_close = ann.post(f"/api/interactions/{accepted.pk}/end/", {})
    assert interaction_close.status_code == 200

    started = ann.post(f"/api/interactions/{accepted.pk}/sessions/", {"channel": whatsapp.channel_id,
                                                                      "text": "Hello again"})

    assert started.status_code == 201, started.content
    assert started.json()["assigned_to"] == ann.user.pk
    # the customer's reply stays with ann: no offer, and she may answer
    customer_writes(whatsapp, text="Yes?", message_id="m-2")
    assert not Offer.objects.filter(interaction_id=started.json()["id"]).exists()
    assert ann.post(f"/api/interactions/{started.json()['id']}/messages/", {"text": "Good"}).status_code == 202
