"""Queues in the admin (API.md, "Routing to agents"): what waits in each and for how long, scoped by tenant,
saved through services.routing."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from channels_app.models import Interaction, Queue
from tests.conftest import member
from tests.factories import InteractionFactory, TenantFactory


@pytest.fixture
def administrator(tenant):
    user = member("admin-1", "Administrator", tenants=[tenant], is_staff=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_the_queue_list_shows_waiting_count_and_oldest_wait_of_the_callers_tenants_only(administrator, tenant,
                                                                                        channel):
    queue = Queue.objects.create(tenant=tenant, key="1:session-chat", routing="workspace")
    for n, minutes in enumerate([3, 1]):
        interaction = InteractionFactory(channel=channel, client_id=f"1555000000{n}", outbound=False)
        Interaction.objects.filter(pk=interaction.pk).update(
            routing_queue=queue, queued_at=timezone.now() - timedelta(minutes=minutes, seconds=5))
    Queue.objects.create(tenant=TenantFactory(id=2, name="Other"), key="2:hidden-queue")

    page = administrator.get("/admin/channels_app/queue/").content.decode()

    assert "1:session-chat" in page and "2:hidden-queue" not in page
    assert '<td class="field-waiting">2</td>' in page
    assert re.search(r'<td class="field-oldest_wait">3 min [0-5]?\d s</td>', page)
    assert administrator.get(f"/admin/channels_app/queue/{Queue.objects.get(key='2:hidden-queue').pk}/change/"
                             ).status_code == 302  # another tenant's: "does not exist", back to the list


@pytest.mark.django_db
def test_a_queue_is_created_in_the_admin_with_agents_of_its_tenant_only(administrator, tenant):
    agent = member("agent-1", "WhatsApp agent", tenants=[tenant])
    stranger = member("stranger", "WhatsApp agent", tenants=[TenantFactory(id=2, name="Other")])
    form = {"key": "1:session-chat", "tenant": tenant.pk, "routing": "workspace", "offer_timeout_seconds": 20}

    refused = administrator.post("/admin/channels_app/queue/add/", {**form, "agents": [stranger.pk]})
    assert refused.status_code == 200 and not Queue.objects.exists()  # the form again, with the error
    created = administrator.post("/admin/channels_app/queue/add/", {**form, "agents": [agent.pk]})

    assert created.status_code == 302
    queue = Queue.objects.get()
    assert (queue.routing, queue.offer_timeout_seconds, list(queue.agents.all())) == ("workspace", 20, [agent])
