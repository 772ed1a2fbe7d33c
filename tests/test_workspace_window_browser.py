"""The workspace's interaction window, reply area and contact panel in Debian's headless Chromium (issue 24, items 3
to 5): one agent's journey through a WhatsApp conversation. The transcript (customer left, agent right, the failed
message's error centred, a delayed message's origination time in bold, one out of order in red, a location with its
map link, receipts, a customer's picture arriving live with its thumbnail), *see older messages...*, the size notice,
a standard response with its field codes filled, another previewed as the customer will see it, a file, the closed
24-hour window turning the text into the notification, the contact edited and found in the directory. Screenshots
of each state go to docs/screenshots/workspace-*.png."""

import io
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.db.models import Max
from django.utils import timezone
from PIL import Image
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from channels_app.models import (
    AgentEvent,
    Contact,
    Delivery,
    Interaction,
    Message,
    StandardResponse,
    StandardResponseCategory,
)
from channels_app.options_catalog import IW
from channels_app.services.deliveries import delivery_attempt
from channels_app.services.interactions import customer_message_receive, interaction_close, message_queue_outbound
from channels_app.services.options import option_set
from channels_app.services.receipts import receipt_apply
from tests.conftest import member
from tests.file_server import Served, start_file_server
from tests.test_browser import admin_sign_in, browser  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]
DOCS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
CLIENT = "15556667777"


def _shot(browser, name, width=1280, height=800):  # noqa: F811
    browser.set_window_size(width, height)
    DOCS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(DOCS / f"workspace-{name}.png"))


def _png(color=(200, 30, 30), size=(640, 480)) -> bytes:
    picture = io.BytesIO()
    Image.new("RGB", size, color).save(picture, format="PNG")
    return picture.getvalue()


def _world(tenant, channel):
    """ann, and her WhatsApp conversation with Johnny: a question of last week, then today's messages."""
    for name, value in (("whatsappsession.max-text-message-size", "60"),
                        ("whatsappsession.enable-free-msg-timespan-monitoring", "true"),
                        ("whatsappsession.default-notification-text", "Thank you for your patience! {{1}}"),
                        ("whatsappsession.default-notification-id", "patience_1"),
                        ("whatsappsession.default-notification-language", "en"),
                        ("whatsappsession.location-map.browse.query",
                         "https://maps.example/?q={LATITUDE},{LONGITUDE}")):
        option_set(section=IW, name=name, value=value)
    ann = member("ann", "WhatsApp agent", tenants=[tenant], password="agent-pass-123")
    now = timezone.now()
    last_week, _ = customer_message_receive(channel=channel, client_id=CLIENT, text="Last week's question",
                                            channel_message_id="old-1")
    interaction_close(interaction_id=last_week.interaction_id, ended_by="bob")
    Interaction.objects.filter(pk=last_week.interaction_id).update(created_at=now - timedelta(days=7))
    Contact.objects.filter(pk=last_week.interaction.contact_id).update(
        first_name="Johnny", attributes={"MyFC_BillAmount": "$129.99"})
    first, _ = customer_message_receive(channel=channel, client_id=CLIENT, text="Hello, is my bill ready?",
                                        channel_message_id="m1", origin_time=now - timedelta(seconds=3))
    interaction = first.interaction
    Interaction.objects.filter(pk=interaction.pk).update(assigned_to=ann, state="active")
    interaction.assigned_to, interaction.state = ann, "active"
    failed = message_queue_outbound(interaction=interaction, payload={"type": "Text", "text": "Let me check."})
    Message.objects.filter(pk=failed.pk).update(status="failed", reasons=[
        {"code": 131026, "message": "Message undeliverable"}])
    late, _ = customer_message_receive(channel=channel, client_id=CLIENT, text="(sent earlier) My account is 4411",
                                       channel_message_id="m2", origin_time=now - timedelta(minutes=10))
    customer_message_receive(channel=channel, client_id=CLIENT, text="I am here", channel_message_id="m3",
                             extra_payload={"type": "Location", "location": {
                                 "latitude": 52.37, "longitude": 4.89, "name": "Dam Square"}})
    billing = StandardResponseCategory.objects.create(tenant=tenant, name="Billing")
    StandardResponse.objects.create(tenant=tenant, category=billing, name="Bill amount", content_type="text",
                                    body="Hello <$Contact.FirstName$>, your bill is <$Contact.MyFC_BillAmount$>.")
    StandardResponse.objects.create(tenant=tenant, category=billing, name="Pick a way", content_type="reply_buttons",
                                    body="How would you like to go on?", structured={"buttons": [
                                        {"id": "pay", "title": "Pay now"}, {"id": "talk", "title": "Talk to us"}]})
    Contact.objects.create(tenant=tenant, phone_number="+15550002222", first_name="Maria", last_name="Lopez")
    return ann, interaction, late


def _wait_for(browser, css, text=None, timeout=20):  # noqa: F811
    def found(driver):
        for node in driver.find_elements(By.CSS_SELECTOR, css):
            if text is None or text in node.text:
                return node
        return False
    # The window re-renders its lists as events arrive: a node found may be replaced before its text is read.
    wait = WebDriverWait(browser, timeout, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(found, f"{css} with {text!r}")


class Events:
    """The agent's events as the server wrote them (AgentEvent rows: the data the stream carries), handed to the
    window's modules as workspace.js hands them on: the stream itself is the shell's (tests/test_workspace*.py), and
    pytest's live server, a WSGI server, does not serve it."""

    def __init__(self, browser, user):  # noqa: F811
        self.browser, self.user = browser, user
        self.seen = AgentEvent.objects.filter(user=user).aggregate(top=Max("pk"))["top"] or 0

    def push(self):
        for event in AgentEvent.objects.filter(user=self.user, pk__gt=self.seen).order_by("pk"):
            self.browser.execute_script(
                "for (const module of [DMS.Transcript, DMS.Reply]) module.onEvent(arguments[0], arguments[1]);",
                event.kind, event.data)
            self.seen = event.pk


def _poll(condition, what, timeout=20):
    deadline = timezone.now() + timedelta(seconds=timeout)
    pause = threading.Event()
    while timezone.now() < deadline:
        found = condition()
        if found:
            return found
        pause.wait(0.05)  # the live server's threads share this process: leave them the interpreter
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_agent_works_a_whatsapp_conversation_in_the_interaction_window(
        browser, live_server, tenant, webhook_channel, receiver, tmp_path, settings):  # noqa: F811
    settings.PUBLIC_BASE_URL = live_server.url  # the files' signed links, on the page's own origin
    channel = webhook_channel
    ann, interaction, late = _world(tenant, channel)
    wait = WebDriverWait(browser, 20)

    # when ann signs in and opens her conversation
    admin_sign_in(browser, live_server, wait, "ann", "agent-pass-123")
    browser.get(f"{live_server.url}/workspace/#{interaction.pk}")
    _wait_for(browser, "#transcript .msg-in", "Dam Square")
    events = Events(browser, ann)

    # then the customer is on the left under the contact's name, the agent on the right, the error centred
    transcript = browser.find_element(By.ID, "transcript")
    customer = transcript.find_elements(By.CSS_SELECTOR, ".transcript-messages .msg-in")
    agent = transcript.find_elements(By.CSS_SELECTOR, ".transcript-messages .msg-out")
    assert [node.find_element(By.CSS_SELECTOR, ".msg-text").text for node in customer[:2]] == [
        "Hello, is my bill ready?", "(sent earlier) My account is 4411"]
    assert customer[0].location["x"] < agent[0].location["x"]
    _wait_for(browser, "#transcript .msg-in .msg-who", "Johnny")
    error = transcript.find_element(By.CSS_SELECTOR, ".msg-error")
    assert "Message undeliverable" in error.text and error.value_of_css_property("text-align") == "center"
    assert agent[0].find_element(By.CSS_SELECTOR, ".receipt").text == "Failed"
    assert "Session started" in transcript.find_element(By.CSS_SELECTOR, ".session-start").text
    # the late message: written 10 minutes ago, its origination time in bold (the arrival as tooltip), in red
    late_node = transcript.find_element(By.CSS_SELECTOR, f'[data-message-id="{late.pk}"]')
    stamp = late_node.find_element(By.CSS_SELECTOR, ".timestamp")
    assert stamp.tag_name == "b" and "arrived" in stamp.get_attribute("title")
    assert stamp.value_of_css_property("color") in ("rgba(204, 0, 0, 1)", "rgb(204, 0, 0)")
    assert len(transcript.find_elements(By.CSS_SELECTOR, ".out-of-order")) == 1
    assert customer[0].find_element(By.CSS_SELECTOR, ".timestamp").tag_name == "time"  # on time: arrival only
    link = transcript.find_element(By.CSS_SELECTOR, ".msg-location a")
    assert link.get_attribute("href") == "https://maps.example/?q=52.37,4.89"
    _shot(browser, "window")

    # "see older messages..." shows last week's session above
    transcript.find_element(By.CSS_SELECTOR, "button.see-older").click()
    _wait_for(browser, "#transcript .older .msg-in", "Last week's question")

    # a picture the customer sends arrives live, then its thumbnail once it is stored
    from channels_app.parsing import InboundText
    from channels_app.services.inbound import _accept
    from channels_app.services.media import message_attachment_fetch

    picture = _png()
    files = start_file_server()
    files.files["/photo.png"] = Served(picture, headers={"Content-Type": "image/png"})
    try:
        _accept(channel, [InboundText(channel_message_id="f-1", client_id=CLIENT, nickname="", business_id="",
                                      time=None, text="My meter", extra={},
                                      attachments=((files.url("/photo.png"), "image/png", "meter.png",
                                                    len(picture)),))], "", look_for_duplicates=False)
        events.push()
        _wait_for(browser, "#transcript .file-pending", "meter.png")
        message_attachment_fetch(attachment_id=Message.objects.get(channel_message_id="f-1").attachments.get().pk)
    finally:
        files.stop()
    events.push()
    thumbnail = _wait_for(browser, "#transcript .file-link img.file-thumbnail")
    WebDriverWait(browser, 10).until(lambda driver: driver.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth > 0", thumbnail))

    # the size notice: counted in bytes of UTF-8 while typing (é is two), and Send waits
    text = browser.find_element(By.ID, "reply-text")
    text.send_keys("é" * 31)
    notice = _wait_for(browser, "#reply-size-notice", "62 bytes")
    assert "2 over the maximum of 60 bytes" in notice.text
    assert not browser.find_element(By.ID, "reply-send").is_enabled()
    _shot(browser, "size-notice")
    text.send_keys(Keys.BACKSPACE)
    WebDriverWait(browser, 5).until(lambda driver: not driver.find_element(By.ID, "reply-size-notice").is_displayed())

    # a standard response found by name, its field codes filled from the contact, sent with Enter
    text.send_keys(Keys.CONTROL, "a", Keys.DELETE)
    browser.find_element(By.ID, "reply-responses-button").click()
    browser.find_element(By.ID, "reply-search").send_keys("bill")
    _wait_for(browser, "#reply-results .response-pick", "Bill amount").click()
    WebDriverWait(browser, 10).until(
        lambda driver: text.get_attribute("value") == "Hello Johnny, your bill is $129.99.")
    _shot(browser, "standard-response")
    text.send_keys(Keys.ENTER)
    sent = _poll(lambda: Message.objects.filter(interaction=interaction, direction="outbound",
                                                text="Hello Johnny, your bill is $129.99.").first(), "the answer")
    # it reaches the customer's webhook, and the receipts come back to the window
    delivery_attempt(delivery_id=Delivery.objects.get(message=sent).pk)
    assert receiver.wait_for(1)[0].json()["text"] == "Hello Johnny, your bill is $129.99."
    sent.refresh_from_db()
    receipt_apply(channel=channel, external_id=sent.external_id, status="Delivered")
    events.push()
    _wait_for(browser, f'[data-message-id="{sent.pk}"] .receipt', "Delivered")

    # structured content is shown as the customer will see it before it is sent
    browser.find_element(By.ID, "reply-responses-button").click()
    search = browser.find_element(By.ID, "reply-search")
    search.clear()
    search.send_keys("Pick")
    _wait_for(browser, "#reply-results .response-pick", "Pick a way").click()
    view = _wait_for(browser, "#reply-preview .customer-view", "Pay now")
    assert "How would you like to go on?" in view.text and "Talk to us" in view.text
    _shot(browser, "structured-preview")
    browser.find_element(By.ID, "reply-send").click()
    _poll(lambda: Message.objects.filter(interaction=interaction, payload__type="ReplyButtons").exists()
          or Message.objects.filter(interaction=interaction, text="How would you like to go on?").exists(),
          "the reply buttons")

    # a file: sent as soon as it is chosen (two-step-attachment-upload is off)
    bill = tmp_path / "receipt.png"
    bill.write_bytes(_png((30, 120, 200), (200, 120)))
    browser.find_element(By.ID, "reply-file-input").send_keys(str(bill))
    with_file = _poll(lambda: Message.objects.filter(interaction=interaction, direction="outbound",
                                                     payload__attachments__0__fileName="receipt.png").first(),
                      "the file")
    _wait_for(browser, f'[data-message-id="{with_file.pk}"] .file-link', "receipt.png")

    # the customer's window has closed: the text will go as the notification template, and says so first
    Interaction.objects.filter(contact=interaction.contact).update(last_customer_message_at=timezone.now()
                                                                   - timedelta(days=2))
    browser.refresh()
    _wait_for(browser, "#reply-window", "closed")
    text = browser.find_element(By.ID, "reply-text")
    text.send_keys("Still there?")
    _wait_for(browser, "#reply-window-notice", "Thank you for your patience! Still there?")
    _shot(browser, "window-closed")
    text.send_keys(Keys.ENTER)
    notification = _poll(lambda: Message.objects.filter(interaction=interaction, payload__type="Notification").first(),
                         "the notification")
    assert notification.payload["template"]["name"] == "patience_1"
    assert notification.payload["text"] == "Thank you for your patience! Still there?"

    # the contact's details are edited in the panel, and another contact is found in the directory
    browser.find_element(By.ID, "contact-edit").click()
    first_name = browser.find_element(By.ID, "contact-field-FirstName")
    first_name.clear()
    first_name.send_keys("John")
    browser.find_element(By.CSS_SELECTOR, "#contact-form button[type=submit]").click()
    _wait_for(browser, '#contact dd[data-attribute="FirstName"]', "John")
    assert Contact.objects.get(pk=interaction.contact_id).first_name == "John"
    WebDriverWait(browser, 10).until(lambda driver: {node.text for node in driver.find_elements(
        By.CSS_SELECTOR, "#transcript .transcript-messages .msg-in .msg-who")} == {"John"})  # the new name
    _wait_for(browser, "#contact .history-item", "this conversation")
    browser.find_element(By.ID, "directory-search").send_keys("lopez", Keys.ENTER)
    _wait_for(browser, "#directory-results td a", "Lopez").click()
    _wait_for(browser, "#contact-name", "Maria")
    _shot(browser, "contact", 1920, 1080)
