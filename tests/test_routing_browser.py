"""Headless Chromium: an administrator finds the queues on the admin's home page and sees what waits in each
(docs/screenshots/22r-queues.png)."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from channels_app.models import Interaction, Queue
from tests.conftest import member
from tests.factories import ChannelFactory, InteractionFactory, TenantFactory
from tests.test_browser import admin_sign_in, browser  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser
DOCS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_administrator_sees_what_waits_in_each_queue(browser, live_server):  # noqa: F811
    # given a queue routed by the server with two customers waiting, and one routed outside
    tenant = TenantFactory(id=1, name="Environment")
    channel = ChannelFactory(channel_id="channel-whatsapp-REAL", tenant=tenant, media_type="whatsapp",
                             transport="simulator", business_id="19251112222")
    agents = [member(name, "WhatsApp agent", tenants=[tenant]) for name in ("ann", "bob")]
    queue = Queue.objects.create(tenant=tenant, key="1:session-chat", routing="workspace", offer_timeout_seconds=20)
    queue.agents.set(agents)
    Queue.objects.create(tenant=tenant, key="1:genesys-chat")
    for n, minutes in enumerate([4, 1]):
        waiting = InteractionFactory(channel=channel, client_id=f"1555000000{n}", outbound=False)
        Interaction.objects.filter(pk=waiting.pk).update(
            routing_queue=queue, queued_at=timezone.now() - timedelta(minutes=minutes, seconds=12))
    member("lead", "Administrator", tenants=[tenant], password="browser-pass-123")
    wait = WebDriverWait(browser, 20)

    # when the administrator logs in and opens Queues from the home page
    admin_sign_in(browser, live_server, wait, "lead")
    assert "Routing" in browser.page_source
    browser.find_element(By.LINK_TEXT, "Queues").click()
    wait.until(expected_conditions.url_matches(r"/admin/channels_app/queue/$"))

    # then each queue shows its routing, what waits and the oldest wait
    rows = {row.find_element(By.CSS_SELECTOR, "th").text: row.text
            for row in browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")}
    assert set(rows) == {"1:session-chat", "1:genesys-chat"}
    assert re.search(r" 2 4 min 1\d s$", rows["1:session-chat"]), rows  # 2 waiting, 4 min 12 s and counting
    DOCS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(DOCS / "22r-queues.png"))
    # and a queue's page shows its agents, chosen among the tenant's users
    browser.find_element(By.LINK_TEXT, "1:session-chat").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "id_agents_to")))
    chosen = [option.text for option in browser.find_elements(By.CSS_SELECTOR, "#id_agents_to option")]
    assert sorted(chosen) == ["ann", "bob"]  # the widget keeps the order the browser moved them in
    browser.save_screenshot(str(DOCS / "22r-queue-agents.png"))
