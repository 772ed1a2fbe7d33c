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
