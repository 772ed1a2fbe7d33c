"""The first run, as a new administrator walks it in headless Chromium at 1400 px: the dashboard, a channel
and its secret, a reply-buttons response built with the form, a campaign with one bad row, a conversation, a
failed delivery retried, the options import and the API docs. Saves the README's screenshots under
docs/screenshots/."""

import time
from pathlib import Path

import pytest
from django.core.management import call_command
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from channels_app.models import Campaign, Channel, Delivery, StandardResponse
from tests.test_browser import browser  # noqa: F401  (the fixture)

SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"

pytestmark = pytest.mark.browser


def shot(driver, name: str, height: int | None = None) -> None:
    """A 1400 px wide screenshot of the page (up to `height` px tall), palette-compressed."""
    from PIL import Image

    SHOTS.mkdir(parents=True, exist_ok=True)
    full = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(full, height or 1500) + 120)  # + the window's own frame
    time.sleep(0.4)
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    image = Image.open(path).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    driver.set_window_size(1400, 1000)


def login(driver, live_server, wait):
    driver.set_window_size(1400, 1000)
    driver.get(f"{live_server.url}/admin/login/")
    driver.find_element(By.NAME, "username").send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys("first-run-pass-1")
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait.until(expected_conditions.url_matches(r"/admin/$"))


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_first_run(browser, live_server, django_user_model, receiver, tmp_path):  # noqa: F811
    # given the demo data and an administrator
    call_command("seed_demo")
    django_user_model.objects.create_superuser("admin", password="first-run-pass-1")
    wait = WebDriverWait(browser, 20)
    url = live_server.url

    # the dashboard: the last 24 hours and the configuration by task
    login(browser, live_server, wait)
    page = browser.page_source
    assert "Messages in (24 h)" in page and "Deliveries due" in page
    assert 'id="group-channels"' in page and 'id="group-conversations"' in page
    shot(browser, "01-dashboard", 1250)

    # a channel: the generated secret shown once, with a copy button
    browser.get(f"{url}/admin/channels_app/channel/add/")
    browser.find_element(By.NAME, "channel_id").send_keys("channel-whatsapp-REAL")
    browser.find_element(By.NAME, "name").send_keys("WhatsApp production")
    Select(browser.find_element(By.NAME, "tenant")).select_by_value("1")
    Select(browser.find_element(By.NAME, "media_type")).select_by_value("whatsapp")
    browser.find_element(By.NAME, "business_id").send_keys("+1 925 111 3333")
    Select(browser.find_element(By.NAME, "transport")).select_by_value("webhook")
    browser.find_element(By.NAME, "webhook_url").send_keys(receiver.url)
    browser.find_element(By.NAME, "inbound_route_by_call").send_keys("1:session-chat")
    browser.find_element(By.NAME, "endpoints-0-queue_key").send_keys("1:session-chat")
    browser.find_element(By.NAME, "_continue").click()
    copy = wait.until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, ".dms-secret .dms-copy")))
    channel = Channel.objects.get(channel_id="channel-whatsapp-REAL")
    assert browser.find_element(By.CSS_SELECTOR, ".dms-secret-value").text == channel.secret
    copy.click()
    wait.until(lambda d: "Copied" in copy.text)
    # with the inbound URL the third party calls, and no second place for the routing queue
    assert browser.find_element(By.ID, "inbound-url").text.endswith(
        "/nexus/v3/channels/channel-whatsapp-REAL/messages")
    options = browser.find_elements(By.CSS_SELECTOR, "select[name$='__prefix__-option'] option")
    assert options and not [o for o in options if o.get_attribute("value") == "channel/inbound-route-by-call"]
    shot(browser, "02-channel-secret-and-inbound-url", 900)

    # send a test message: the webhook's answer is shown
    browser.get(f"{url}/admin/channels_app/channel/")
    browser.find_element(By.CSS_SELECTOR, f"input[name=_selected_action][value='{channel.pk}']").click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("send_test_message")
    browser.find_element(By.NAME, "index").click()
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist")))
    assert "Test message through" in browser.page_source and "HTTP 200" in browser.page_source
    shot(browser, "03-channel-test-message", 500)

    # a reply-buttons response built with the form, the preview beside it
    browser.get(f"{url}/admin/channels_app/standardresponse/add/?content_type=reply_buttons")
    browser.find_element(By.NAME, "id").clear()
    browser.find_element(By.NAME, "id").send_keys("FEEDBACK00000001")
    browser.find_element(By.NAME, "name").send_keys("Feedback")
    browser.find_element(By.NAME, "body").send_keys("Hello <$Contact.FirstName$>, was this helpful?")
    browser.find_element(By.NAME, "footer").send_keys("One tap is enough")
    for title, reply_id in (("Yes, thanks", "yes"), ("Not really", "no")):
        browser.find_element(By.CSS_SELECTOR, ".sr-editor > .sr-add").click()
        row = browser.find_elements(By.CSS_SELECTOR, ".sr-editor .sr-row")[-1]
        row.find_element(By.CSS_SELECTOR, "input[data-key=title]").send_keys(title)
        row.find_element(By.CSS_SELECTOR, "input[data-key=id]").send_keys(reply_id)
    wait.until(lambda d: "Not really" in d.find_element(By.ID, "sr-preview").text)
    assert "Hello John, was this helpful?" in browser.find_element(By.ID, "sr-preview").text
    # a title past the limit: the counter turns red and the preview says why in plain words
    row.find_element(By.CSS_SELECTOR, "input[data-key=title]").send_keys(" at all, sorry")
    wait.until(lambda d: "Button 2, title" in d.find_element(By.ID, "sr-preview").text)
    assert row.find_element(By.CSS_SELECTOR, ".dms-counter.over").text == "24 / 20"
    shot(browser, "04-reply-buttons-form-and-preview", 1250)
    for _ in " at all, sorry":
        row.find_element(By.CSS_SELECTOR, "input[data-key=title]").send_keys("\b")
    browser.find_element(By.NAME, "_save").click()
    try:
        wait.until(expected_conditions.url_matches(r"/standardresponse/$"))
    except Exception:
        errors = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".errorlist, .errornote")]
        raise AssertionError(errors) from None
    assert StandardResponse.objects.get(pk="FEEDBACK00000001").structured["buttons"] == [
        {"title": "Yes, thanks", "id": "yes"}, {"title": "Not really", "id": "no"}]

    # a campaign with one bad row: the report stays on its page, refused row and all
    audience = tmp_path / "audience.csv"
    audience.write_text("client_id,Contact.FirstName,CustomProperties.Amount\n"
                        "+15550100101,Ada,$10\n+15550100102,Grace,$20\nnot-a-phone,Alan,$30\n")
    browser.get(f"{url}/admin/channels_app/campaign/add/")
    browser.find_element(By.NAME, "name").send_keys("Bill reminder, March")
    Select(browser.find_element(By.NAME, "channel")).select_by_visible_text("channel-ghub-simulator")
    Select(browser.find_element(By.NAME, "standard_response")).select_by_value("DEMO0NOTIF000001")
    browser.find_element(By.NAME, "audience").send_keys(str(audience))
    browser.find_element(By.NAME, "_continue").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "upload-report")))
    campaign = Campaign.objects.get(name="Bill reminder, March")
    report = browser.find_element(By.ID, "upload-report").text
    assert "not-a-phone" in report and "1\nrows refused" in report
    browser.find_element(By.CSS_SELECTOR, "button[value=start]").click()
    # (the page already shows the upload's message: wait for the start's own)
    wait.until(expected_conditions.text_to_be_present_in_element((By.CSS_SELECTOR, "ul.messagelist"),
                                                                 "Bill reminder, March: running."))
    # (no worker in this test: the batches are sent here, as a worker would send them)
    from channels_app.services.campaigns import campaign_run_batch

    while campaign_run_batch(campaign_id=campaign.pk):
        pass
    # (the page follows the campaign to its end: no reload)
    wait.until(lambda d: d.find_element(By.ID, "campaign-counts").get_attribute("data-state") == "completed")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#campaign-chart svg polyline"))
    assert "messages / second" in browser.find_element(By.ID, "campaign-chart").get_attribute("innerHTML")
    shot(browser, "05-campaign-finished-with-report", 1300)

    # conversations: contact, last message, campaign; filtered by the campaign
    browser.get(f"{url}/admin/channels_app/interaction/?campaign={campaign.pk}")
    assert "Ada (+15550100101)" in browser.page_source and "Maria" not in browser.page_source
    shot(browser, "06-interactions-by-campaign", 700)
    browser.get(f"{url}/admin/channels_app/interaction/")
    browser.find_element(By.LINK_TEXT, "Maria (+15550100010)").click()
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".field-transcript")))
    assert not browser.find_elements(By.NAME, "_save") and not browser.find_elements(By.CSS_SELECTOR, ".deletelink")
    shot(browser, "07-conversation", 1100)

    # a failed delivery: attempt n of m, target, the answer in words; its page (latency, attempts); retried now
    from channels_app.services.deliveries import delivery_attempt
    from channels_app.services.interactions import customer_message_receive, message_queue_outbound

    received, _ = customer_message_receive(channel=channel, client_id="+15550100200", text="Hi", nickname="Lin")
    sent = message_queue_outbound(interaction=received.interaction, payload={"text": "Hello Lin"})
    receiver.plan.append(400)
    delivery = Delivery.objects.get(message=sent)
    delivery_attempt(delivery_id=delivery.pk)
    assert Delivery.objects.get(pk=delivery.pk).state == "failed"
    browser.get(f"{url}/admin/channels_app/delivery/")
    assert f"1 of {channel.retry_attempts + 1}" in browser.page_source
    shot(browser, "08-deliveries", 650)
    browser.get(f"{url}/admin/channels_app/delivery/{delivery.pk}/change/")
    assert "answered 400" in browser.page_source and not browser.find_elements(By.NAME, "_save")
    browser.find_element(By.CSS_SELECTOR, "#delivery-retry button").click()
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist")))
    assert "retrying now" in browser.page_source
    assert Delivery.objects.get(pk=delivery.pk).state == "pending"
    shot(browser, "09-delivery-retried", 1100)

    # options: a dry run of a .cfg import, saying where each value would go
    cfg = tmp_path / "GenesysHubDriver.cfg"
    cfg.write_text("[interaction-workspace]\nwhatsappsession.transcript-interactions-count = 7\n"
                   "[channel-ghub]\ninbound-route-by-call = 1:session-chat\nbogus = 1\n")
    browser.get(f"{url}/admin/channels_app/optionvalue/import/")
    browser.find_element(By.NAME, "file").send_keys(str(cfg))
    Select(browser.find_element(By.NAME, "channel")).select_by_value("channel-whatsapp-REAL")
    browser.find_element(By.NAME, "dry_run").click()
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    report = wait.until(expected_conditions.presence_of_element_located((By.ID, "import-report"))).text
    assert "Dry run" in report and "-> global" in report and "-> channel channel-whatsapp-REAL" in report
    shot(browser, "10-options-import-dry-run", 800)
    browser.get(f"{url}/admin/channels_app/optionvalue/add/")
    Select(browser.find_element(By.NAME, "option")).select_by_value(
        "interaction-workspace/whatsappsession.transcript-interactions-count")
    assert "Valid values" in browser.find_element(By.ID, "value_helptext").text
    shot(browser, "11-option-help-while-editing", 700)

    # the API docs: a tag per resource, a summary on every operation
    browser.get(f"{url}/api/docs/")
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".opblock-tag")))
    time.sleep(1)
    assert "Campaigns" in browser.page_source
    shot(browser, "12-api-docs", 1100)
