"""The workspace's page (`/workspace/`, channels_app/workspace): who may open it, what it renders for the page's
scripts, and the API doors it added (`/api/agents/`, `/api/agents/me/interactions/`,
`/api/agents/me/session-channels/`)."""

import json
import re

import pytest

from channels_app.options_catalog import IW, ReadBy, get_option
from channels_app.services.options import option_set
from channels_app.workspace.options import SHELL_OPTIONS, WINDOW_OPTIONS
from tests.conftest import member
from tests.test_routing_api import Client as RoutingClient
from tests.test_routing_api import (  # noqa: F401 (fixtures)
    accepted,
    admin_api,
    agents,
    customer_writes,
    whatsapp,
    workspace_queue,
)


def _script_json(html: str, element_id: str):
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert found, element_id
    return json.loads(found.group(1))


@pytest.mark.django_db
def test_signed_out_the_workspace_sends_to_the_login_and_back(client):
    response = client.get("/workspace/")

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/workspace/"


@pytest.mark.django_db
def test_an_account_without_the_workspace_gets_a_page_saying_why(client, tenant):
    client.force_login(member("planner", "Campaign manager", tenants=[tenant]))

    response = client.get("/workspace/")

    assert response.status_code == 403
    body = response.content.decode()
    assert "The workspace is not for this account" in body and "channels_app.use_workspace" in body


@pytest.mark.django_db
def test_an_agent_gets_the_page_with_its_options_and_who_it_is(client, tenant, channel):
    agent = member("ann", "WhatsApp agent", tenants=[tenant])
    agent.first_name, agent.last_name = "Ann", "Agent"
    agent.save()
    option_set(section=IW, name="whatsappsession.new-message-blinking-duration", value="7")
    option_set(section=IW, name="whatsappsession.max-text-message-size", value="900", channel=channel)
    client.force_login(agent)

    response = client.get("/workspace/")

    assert response.status_code == 200
    html = response.content.decode()
    options = _script_json(html, "workspace-options")
    assert options["whatsappsession.new-message-blinking-duration"] == 7
    assert options["whatsappsession.pending-response-to-customer"] == [30, 50]
    assert set(options) == set(SHELL_OPTIONS) | set(WINDOW_OPTIONS)
    assert _script_json(html, "workspace-channel-options") == {
        channel.channel_id: {"whatsappsession.max-text-message-size": 900}}
    me = _script_json(html, "workspace-me")
    assert me["id"] == agent.pk and me["username"] == "ann" and me["display_name"] == "Ann Agent"
    assert me["ready"]["whatsapp"] is False and me["capacity"] >= 1 and me["assigned"] == 0
    assert "channels_app.use_workspace" in me["permissions"]
    for element in ('id="conversation"', 'id="transcript"', 'id="reply"', 'id="contact"'):
        assert element in html
    scripts = re.findall(r'<script defer src="[^"]*/workspace/(\w+)\.js"', html)
    assert scripts == ["workspace", "transcript", "reply", "contact"]


def test_every_option_the_page_reads_says_so_in_the_catalog():
    for name in [*SHELL_OPTIONS, *WINDOW_OPTIONS]:
        definition = get_option(IW, name)
        assert definition is not None, name
        assert definition.read_by in (ReadBy.WORKSPACE, ReadBy.SERVER), name


# --- the API doors the page added ------------------------------------------------------------------------------------
# The routing world of tests/test_routing_api.py (imported above): ann and bob, agents of queue 1:session-chat (routed
# by the server), the customer writing on /nexus; `accepted`: an interaction ann accepted, bob ready.


@pytest.mark.django_db
def test_the_agents_one_may_transfer_to_are_those_of_the_tenant_with_the_workspace(agents, accepted, tenant):  # noqa: F811
    from tests.factories import TenantFactory

    ann, bob = agents
    member("planner", "Campaign manager", tenants=[tenant])  # no workspace
    member("stranger", "WhatsApp agent", tenants=[TenantFactory(id=2, name="Other")])

    listed = ann.get(f"/api/agents/?interaction={accepted.pk}").json()

    assert [agent["username"] for agent in listed] == ["ann", "bob"]
    by_name = {agent["username"]: agent for agent in listed}
    assert by_name["ann"]["assigned"] == 1 and by_name["ann"]["ready"]["whatsapp"] is True
    assert by_name["bob"] == {"id": bob.user.pk, "username": "bob", "display_name": "bob",
                              "ready": {"whatsapp": True, "abc": False, "sms": False, "email": False},
                              "capacity": 3, "assigned": 0}
    assert [agent["username"] for agent in ann.get("/api/agents/").json()] == ["ann", "bob"]


@pytest.mark.django_db
def test_the_agents_list_refuses_what_it_cannot_read(agents, tenant):  # noqa: F811
    from tests.factories import ChannelFactory, InteractionFactory, TenantFactory

    ann, _ = agents
    away = ChannelFactory(channel_id="channel-away", tenant=TenantFactory(id=2, name="Other"))
    elsewhere = InteractionFactory(channel=away)

    response = ann.get(f"/api/agents/?interaction={elsewhere.pk}")
    assert response.status_code == 400 and "interaction" in response.json()
    assert ann.get("/api/agents/", {"interaction": "a\x00b"}).status_code == 400  # no URL holds a NUL
    response = ann.get("/api/agents/", {"interaction": "x" * 10_000})
    assert response.status_code == 400 and "interaction" in response.json()
    response = ann.get("/api/agents/?who=all")
    assert response.status_code == 400 and "who" in response.json()
    planner = RoutingClient(member("planner", "Campaign manager", tenants=[tenant]))
    assert planner.get("/api/agents/").status_code == 403
    assert planner.get("/api/agents/me/interactions/").status_code == 403


@pytest.mark.django_db
def test_an_agents_conversations_show_what_waits_in_each(agents, accepted, whatsapp, django_assert_max_num_queries):  # noqa: F811
    ann, bob = agents

    [item] = ann.get("/api/agents/me/interactions/").json()
    assert item["id"] == accepted.pk and item["media"] == "whatsapp" and item["conference"] is False
    assert item["unread"] == 1 and item["waiting_since"] is not None
    assert item["last_message"]["text"] == "Hello, my bill is wrong"
    assert item["last_message"]["direction"] == "inbound"
    assert item["contact_details"]["nickname"] == "Ann"
    first_wait = item["waiting_since"]

    customer_writes(whatsapp, text="Are you there?", message_id="m-2")
    [item] = ann.get("/api/agents/me/interactions/").json()
    assert (item["unread"], item["waiting_since"]) == (2, first_wait)
    assert item["last_message"]["text"] == "Are you there?"

    assert ann.post(f"/api/interactions/{accepted.pk}/messages/", {"text": "Yes, looking"}).status_code == 202
    [item] = ann.get("/api/agents/me/interactions/").json()
    assert (item["unread"], item["waiting_since"]) == (0, None)
    assert item["last_message"]["direction"] == "outbound"

    # bob has none until he joins the conference; then he has it, as a conference
    assert bob.get("/api/agents/me/interactions/").json() == []
    invite = ann.post(f"/api/interactions/{accepted.pk}/conference/", {"agent": bob.user.pk}).json()
    bob.post(f"/api/offers/{invite['id']}/accept/")
    [shared] = bob.get("/api/agents/me/interactions/").json()
    assert shared["id"] == accepted.pk and shared["conference"] is True and shared["assigned_to"] == ann.user.pk

    # the same few queries however many conversations
    from channels_app.models import Offer

    bob.patch("/api/agents/me/", {"ready": {"whatsapp": False}})
    ann.patch("/api/agents/me/", {"capacity": 10})
    for number in range(2, 5):
        interaction = customer_writes(whatsapp, client=f"1555666000{number}", message_id=f"n-{number}")
        ann.post(f"/api/offers/{Offer.objects.get(interaction=interaction, state='pending').pk}/accept/")
    with django_assert_max_num_queries(8):
        listed = ann.get("/api/agents/me/interactions/").json()
    assert len(listed) == 4

    # ended: gone from the list
    ann.post(f"/api/interactions/{accepted.pk}/end/", {"disposition": "Resolved"})
    assert accepted.pk not in [entry["id"] for entry in ann.get("/api/agents/me/interactions/").json()]


@pytest.mark.django_db
def test_a_new_session_may_use_the_channels_of_the_outbound_session_config(agents, accepted, whatsapp, tenant):  # noqa: F811
    from tests.factories import ChannelFactory, TenantFactory

    ann, _ = agents
    sms = ChannelFactory(channel_id="channel-sms", name="SMS", tenant=tenant, media_type="sms",
                         business_id="19251113333")
    ChannelFactory(channel_id="channel-off", name="Off", tenant=tenant, enabled=False)
    ChannelFactory(channel_id="channel-away", tenant=TenantFactory(id=2, name="Other"))
    option_set(section=IW, name="whatsappsession.outbound-session-config", value=json.dumps({"channels": [
        {"channel-name": name} for name in ("channel-sms", "channel-off", "channel-away", "channel-nowhere")]}))

    listed = ann.get(f"/api/interactions/{accepted.pk}/session-channels/").json()

    assert [(row["channel_id"], row["own"]) for row in listed] == [(whatsapp.channel_id, True), (sms.channel_id, False)]
    assert listed[1] == {"channel_id": "channel-sms", "name": "SMS", "media_type": "sms",
                         "business_id": "19251113333", "own": False}
    assert ann.get("/api/interactions/nosuchinteraction/session-channels/").status_code == 404


@pytest.mark.django_db
def test_the_admin_links_to_the_workspace_for_those_who_may_use_it(client, tenant):
    client.force_login(member("ann", "WhatsApp agent", tenants=[tenant]))
    home = client.get("/admin/").content.decode()
    assert 'href="/workspace/"' in home and "Open the workspace" in home

    client.force_login(member("planner", "Campaign manager", tenants=[tenant]))
    assert 'href="/workspace/"' not in client.get("/admin/").content.decode()
