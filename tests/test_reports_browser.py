"""Headless Chromium: a lead opens Reports from the admin's home page, reads the charts, picks a period and
follows a figure to the conversations behind it (docs/screenshots/27-reports.png)."""

from datetime import timedelta
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from channels_app.models import Channel
from channels_app.services.rollups import reports_fold
from tests.conftest import member
from tests.factories import ChannelFactory, TenantFactory
from tests.test_browser import SCREENSHOTS, admin_sign_in, browser  # noqa: F401 - the fixture
from tests.test_reports import T0, _interaction, _message

pytestmark = pytest.mark.browser
DOCS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_lead_reads_the_reports_and_follows_a_figure(browser, live_server):  # noqa: F811
    # given two queues' conversations over two channels, answered by two agents, and a circuit open an hour
    tenant = TenantFactory(id=1, name="Environment")
    whatsapp = ChannelFactory(channel_id="channel-whatsapp-REAL", name="WhatsApp", tenant=tenant,
                              endpoints=["1:session-chat", "1:sales"])
    sms = ChannelFactory(channel_id="channel-sms", name="SMS", tenant=tenant, media_type="sms",
                         endpoints=["1:session-chat"])
    ann, bob = (member(name, "WhatsApp agent", tenants=[tenant]) for name in ("ann", "bob"))
    for n in range(9):
        channel, queue, agent = [(whatsapp, "1:session-chat", ann), (sms, "1:session-chat", bob),
                                 (whatsapp, "1:sales", bob)][n % 3]
        interaction = _interaction(channel, client_id=f"1555000010{n}", queue=queue, agent=agent if n != 4 else None,
                                   created_at=T0 + timedelta(minutes=7 * n),
                                   ended_after=timedelta(minutes=3 + 2 * n), disposition=["Sale", "Info", ""][n % 3])
        _message(interaction, direction="inbound", after=timedelta(0))
        if n != 4:
            _message(interaction, direction="outbound", after=timedelta(seconds=15 + 20 * n),
                     status=["read", "delivered", "failed"][n % 3], latencies=[80.0 + 30 * n],
                     reasons=[{"code": 310, "message": "Rate limit reached."}] if n % 3 == 2 else ())
            _message(interaction, direction="inbound", after=timedelta(seconds=60 + 20 * n))
    Channel.objects.filter(pk=sms.pk).update(down_since=T0)
    Channel.objects.filter(pk=sms.pk).update(down_since=None)
    reports_fold()
    member("lead", "Administrator", tenants=[tenant], password="browser-pass-123")
    wait = WebDriverWait(browser, 20)

    # when the lead opens Reports from the home page and picks the 30 days, by agent
    admin_sign_in(browser, live_server, wait, "lead")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "27-home-with-reports.png"))
    browser.find_element(By.CSS_SELECTOR, ".dms-home-reports a").click()
    wait.until(expected_conditions.url_matches(r"/admin/reports/"))
    browser.find_element(By.LINK_TEXT, "30 days").click()
    wait.until(expected_conditions.url_contains("from="))
    Select(browser.find_element(By.NAME, "group_by")).select_by_visible_text("agent")
    browser.find_element(By.CSS_SELECTOR, ".dms-period button").click()
    wait.until(expected_conditions.url_contains("group_by=agent"))

    # then the charts have labelled axes and the tables a row per agent and per channel
    titles = [element.text for element in browser.find_elements(By.CSS_SELECTOR, "svg .dms-chart-axis-title")]
    assert "count (interactions, messages)" in titles and "seconds (p50, p90)" in titles and "messages" in titles
    tables = browser.find_elements(By.CSS_SELECTOR, "table.dms-report")
    agents = {row.find_element(By.CSS_SELECTOR, "th").text: row for row in tables[0].find_elements(
        By.CSS_SELECTOR, "tbody tr")}
    assert set(agents) == {"ann", "bob", "(not assigned)"}
    channels = [row.find_element(By.CSS_SELECTOR, "th").text for row in tables[1].find_elements(
        By.CSS_SELECTOR, "tbody tr")]
    assert channels == ["SMS (channel-sms)", "WhatsApp (channel-whatsapp-REAL)"]
    DOCS.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(1280, 1900)
    browser.save_screenshot(str(DOCS / "27-reports.png"))

    # and bob's interactions figure opens the list of exactly those conversations
    figure = agents["bob"].find_elements(By.CSS_SELECTOR, "td a")[0]
    count = figure.text
    figure.click()
    wait.until(expected_conditions.url_contains("/admin/channels_app/interaction/"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")) == int(count) == 5
