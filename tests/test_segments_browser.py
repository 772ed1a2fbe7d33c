"""Headless Chromium: a campaign manager makes a segment in the admin (a bad filter is named), sees how many
contacts it holds with the first of them, then a campaign built from it with a send window, whose page counts
the recipients waiting for their window (docs/screenshots/27s-segment.png, 27s-campaign-window.png)."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from channels_app.models import Campaign, Contact, Segment
from channels_app.services.campaigns import campaign_run_batch
from tests.conftest import member
from tests.factories import ChannelFactory, StandardResponseFactory, TenantFactory
from tests.test_browser import admin_sign_in, browser  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser
DOCS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def fill(driver, name: str, text: str) -> None:
    field = driver.find_element(By.NAME, name)
    field.clear()
    field.send_keys(text)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_campaign_manager_builds_a_campaign_from_a_segment_with_a_send_window(browser, live_server):  # noqa: F811
    # given contacts of tenant 1 in New York, Paris and Tokyo, and one of another tenant
    tenant = TenantFactory(id=1, name="Environment")
    away = TenantFactory(id=2, name="Away")
    ChannelFactory(channel_id="channel-sms", name="SMS", tenant=tenant, media_type="sms",
                   transport="simulator", business_id="19251112222", endpoints=["1:session-chat"],
                   inbound_route_by_call="1:session-chat")
    StandardResponseFactory(id="BROWSER000000001", tenant=tenant, name="Spring sale", content_type="text",
                            body="Hello <$Contact.FirstName$>, our spring sale starts today.")
    wrote = datetime(2026, 5, 10, 14, tzinfo=UTC)
    for phone, name, tier, zone in (("+12125550001", "Ada", "gold", "America/New_York"),
                                    ("+33612345678", "Blaise", "gold", "Europe/Paris"),
                                    ("+819012345678", "Chiyo", "gold", "Asia/Tokyo"),
                                    ("+12125550004", "Dora", "silver", "America/New_York")):
        contact = Contact.objects.create(tenant=tenant, phone_number=phone, client_id=phone, first_name=name,
                                         attributes={"tier": tier, "timezone": zone})
        Contact.objects.filter(pk=contact.pk).update(last_message_at=wrote)
    Contact.objects.create(tenant=away, phone_number="+12125550009", client_id="x", attributes={"tier": "gold"})
    member("marketer", "Campaign manager", tenants=[tenant], password="browser-pass-123")
    wait = WebDriverWait(browser, 20)
    admin_sign_in(browser, live_server, wait, "marketer")

    # when they add a segment with an unknown attribute operator
    browser.get(f"{live_server.url}/admin/channels_app/segment/add/")
    fill(browser, "name", "Gold customers")
    browser.find_element(By.CSS_SELECTOR, "select[name=tenant] option[value='1']").click()
    fill(browser, "filter", json.dumps({"attributes": {"tier": {"like": "gold"}}}))
    browser.find_element(By.NAME, "_continue").click()

    # then the operator is named, and nothing is stored
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".errorlist")))
    assert "filter.attributes.tier" in browser.page_source and "like" in browser.page_source
    assert not Segment.objects.exists()

    # when they fix it
    fill(browser, "filter", json.dumps({"attributes": {"tier": "gold"}, "last_message_after": "2026-05-01"}))
    browser.find_element(By.NAME, "_continue").click()

    # then the segment's page shows how many contacts it holds now, and the first of them
    wait.until(expected_conditions.url_matches(r"/admin/channels_app/segment/\d+/change/$"))
    contacts = browser.find_element(By.CSS_SELECTOR, ".field-contacts").text
    assert "3 contact(s)" in contacts and "+12125550001" in contacts and "+12125550004" not in contacts
    assert "+12125550009" not in contacts  # another tenant's contact
    DOCS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(DOCS / "27s-segment.png"))

    # when they build a campaign from it, sent between 09:00 and 17:00 in each recipient's zone
    segment = Segment.objects.get()
    browser.get(f"{live_server.url}/admin/channels_app/campaign/add/")
    fill(browser, "name", "Spring sale")
    browser.find_element(By.CSS_SELECTOR, "select[name=channel] option:nth-child(2)").click()
    browser.find_element(By.CSS_SELECTOR, "select[name=standard_response] option:nth-child(2)").click()
    browser.find_element(By.CSS_SELECTOR, f"select[name=segment] option[value='{segment.pk}']").click()
    fill(browser, "send_window_0", "09:00")
    fill(browser, "send_window_1", "09:00")
    browser.find_element(By.NAME, "_continue").click()
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".errorlist")))
    assert "send_window.to" in browser.page_source  # from equal to to: named
    browser.execute_script("document.querySelector('.field-send_window').scrollIntoView()")
    browser.save_screenshot(str(DOCS / "27s-send-window-error.png"))
    # a window open now in Paris only (two hours around Paris's time), on every day
    paris_now = timezone.now().astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    window = {"from": (paris_now - timedelta(hours=1)).strftime("%H:%M"),
              "to": (paris_now + timedelta(hours=1)).strftime("%H:%M"), "timezone": "recipient"}
    fill(browser, "send_window_0", window["from"])
    fill(browser, "send_window_1", window["to"])
    assert browser.find_element(By.NAME, "send_window_3").get_attribute("value") == "recipient"
    browser.find_element(By.NAME, "_continue").click()
    wait.until(expected_conditions.url_matches(r"/admin/channels_app/campaign/\d+/change/$"))
    campaign = Campaign.objects.get()
    assert campaign.segment_id == segment.pk and campaign.send_window == {
        **window, "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}

    # and start it: the contacts are taken, Blaise (Paris) is sent to, Ada and Chiyo wait for their window
    browser.find_element(By.CSS_SELECTOR, "#campaign-actions button[value=start]").click()
    wait.until(lambda _: Campaign.objects.get().state == "running")
    campaign_run_batch(campaign_id=campaign.pk)
    browser.get(f"{live_server.url}/admin/channels_app/campaign/{campaign.pk}/change/")
    wait.until(lambda driver: "waiting for their send window" in driver.find_element(By.ID, "campaign-progress").text)
    progress = browser.find_element(By.ID, "campaign-progress").text
    assert not campaign.recipients.exclude(error="").exists(), list(campaign.recipients.values("client_id", "error"))
    assert "pending 2 (2 waiting for their send window)" in progress and "sent 1" in progress, progress
    browser.save_screenshot(str(DOCS / "27s-campaign-window.png"))
    # a running campaign's window is shown in words, no longer editable
    assert f"{window['from']} to {window['to']}, every day, in each recipient's own zone" in browser.find_element(
        By.CSS_SELECTOR, ".field-send_window_text").text
