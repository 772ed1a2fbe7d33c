"""Headless Chromium: an agent handles an SMS conversation and an e-mail conversation end to end in the workspace
(issue 24, "Done when": a WhatsApp, an SMS and an e-mail conversation; WhatsApp is tests/test_workspace_browser.py).
Each customer writes through /nexus as that channel's third-party system posts (an SMS gateway: a Text from a phone
number; an e-mail relay: an Email with its subject, from an address); the agent, ready for that media, accepts the
offer, answers from the reply area with the keyboard, and the answer reaches the customer's side: that channel's
webhook, a real receiver on 127.0.0.1 (an SMS as a Text to the phone number; an e-mail as the spec's Email, "Re: "
and the subject, text and HTML); then Done with a disposition. Neither media has WhatsApp's 24-hour window nor
its notification template; an e-mail is not held to `max-text-message-size`. Screenshots:
docs/screenshots/workspace-sms.png and workspace-email.png."""

import hashlib
import hmac

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions

from channels_app.models import Channel, Interaction, Message, Queue
from channels_app.options_catalog import IW
from channels_app.services.business_attributes import business_attributes_ensure_required
from channels_app.services.channels import channel_save
from channels_app.services.options import option_set
from tests.conftest import member
from tests.factories import TenantFactory
from tests.test_workspace_browser import (  # noqa: F401 - fixtures
    SECRET,
    AsgiServer,
    browsers,
    dialog,
    dispatcher,
    nexus,
    offers_of,
    server,
    shot,
    sign_in,
    wait_for_options,
)
from tests.third_party import Receiver
from tests.workers import poll_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PHONE = "15550104242"
ADDRESS = "maria@mail.example"


@pytest.fixture
def receivers():
    """The SMS gateway's and the e-mail relay's webhooks: two real receivers on 127.0.0.1."""
    running = {"sms": Receiver(keep_requests=True), "email": Receiver(keep_requests=True)}
    yield running
    for receiver in running.values():
        receiver.stop()


def signed(received) -> bool:
    expected = "sha1=" + hmac.new(SECRET.encode(), received.body, hashlib.sha1).hexdigest()
    return hmac.compare_digest(received.headers["X-Hub-Signature"], expected)


def ready_for(browser, wait, media: str) -> None:
    browser.find_element(By.CSS_SELECTOR, f'#ready input[value="{media}"]').click()
    wait.until(lambda driver: driver.find_element(By.CSS_SELECTOR, f'#ready input[value="{media}"]')
               .find_element(By.XPATH, "..").get_attribute("data-ready") == "yes")


def accept_offer(browser, wait, *, words: str, meta: str) -> None:
    """The offer's preview shows the customer's first words and the media; Alt+A accepts it."""
    wait.until(lambda driver: offers_of(driver) and words in offers_of(driver)[0].text)
    offer = offers_of(browser)[0]
    assert meta in offer.find_element(By.CLASS_NAME, "offer-meta").text, offer.text
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ALT, "a")
    wait.until(expected_conditions.visibility_of_element_located((By.ID, "conversation")))
    wait.until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "#transcript .msg-in"))


def answer(browser, wait, lines: list[str]) -> None:
    """Typed in the reply area: Shift+Enter between the lines, Enter sends."""
    text = browser.find_element(By.ID, "reply-text")
    for n, line in enumerate(lines):
        if n:
            text.send_keys(Keys.SHIFT, Keys.ENTER)
        text.send_keys(line)
    text.send_keys(Keys.ENTER)
    wait.until(lambda driver: driver.find_element(By.ID, "reply-status").text == "Sent.")
    wait.until(lambda driver: any("\n".join(lines) in node.text for node in driver.find_elements(
        By.CSS_SELECTOR, "#transcript .msg-out .msg-text")))


def message_shown(wait, css: str, text: str):
    return wait.until(lambda driver: next((node for node in driver.find_elements(By.CSS_SELECTOR, css)
                                           if text in node.text), False))


def done(browser, wait, interaction: Interaction) -> None:
    ending = dialog(browser, wait, "done", "dialog-done")
    wait_for_options(wait, ending.find_element(By.NAME, "disposition"), 2).select_by_value("Resolved")
    ending.find_element(By.CSS_SELECTOR, 'button[value="ok"]').click()
    poll_until(lambda: Interaction.objects.get(pk=interaction.pk).state == "ended", 10, "the interaction to end")
    assert Interaction.objects.get(pk=interaction.pk).disposition == "Resolved"
    wait.until(lambda driver: not driver.find_elements(
        By.CSS_SELECTOR, f'#conversations a[data-interaction="{interaction.pk}"]'))


def reply_area_shows_no_whatsapp_window(browser) -> None:
    assert not browser.find_element(By.ID, "reply-window").is_displayed()
    assert not browser.find_element(By.ID, "reply-window-notice").is_displayed()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_agent_handles_an_sms_and_an_email_conversation(browsers, server, dispatcher, receivers):  # noqa: F811
    # given an SMS channel and an e-mail channel, each with its third party's webhook, each routed by the server
    # to a queue of ann's; and WhatsApp's notification and text size options set (they are not for these media)
    business_attributes_ensure_required()  # the Disposition Code values (a flushed database lost them)
    tenant = TenantFactory(id=1, name="Environment")
    sms = channel_save(channel=Channel(
        channel_id="channel-sms", name="SMS", tenant=tenant, media_type="sms", transport="webhook",
        business_id="19251113333", webhook_url=receivers["sms"].url, secret=SECRET), inbound_route_by_call="1:sms")
    email = channel_save(channel=Channel(
        channel_id="company.com", name="Support", tenant=tenant, media_type="email", transport="webhook",
        business_id="support@company.com", webhook_url=receivers["email"].url, secret=SECRET),
        inbound_route_by_call="1:email")
    ann = member("ann", "WhatsApp agent", tenants=[tenant])
    for key in ("1:sms", "1:email"):
        Queue.objects.create(tenant=tenant, key=key, routing="workspace", offer_timeout_seconds=60).agents.set([ann])
    for name, value in (("whatsappsession.enable-free-msg-timespan-monitoring", "true"),
                        ("whatsappsession.default-notification-text", "Thank you for your patience! {{1}}"),
                        ("whatsappsession.default-notification-id", "patience_1"),
                        ("whatsappsession.max-text-message-size", "160")):
        option_set(section=IW, name=name, value=value)
    browser = browsers()
    wait = sign_in(browser, server, "ann")
    ready_for(browser, wait, "sms")
    ready_for(browser, wait, "email")

    # --- SMS ---------------------------------------------------------------------------------------------------
    # when a customer texts the SMS gateway, which posts it to /nexus
    nexus(server, sms, {"type": "Text", "text": "Hi, my meter reading is 4411",
                        "channel": {"messageId": "sms-1", "from": {"id": PHONE}, "to": {"id": sms.business_id}}})

    # then ann is offered it as an SMS, accepts it, and sees no 24-hour window
    accept_offer(browser, wait, words="my meter reading is 4411", meta="SMS · queue 1:sms")
    texting = Interaction.objects.get(channel=sms, assigned_to=ann)
    assert "Hi, my meter reading is 4411" in browser.find_element(By.CSS_SELECTOR, "#transcript .msg-in").text
    assert browser.find_element(By.ID, "conversation-meta").text.startswith("SMS · channel-sms")
    reply_area_shows_no_whatsapp_window(browser)
    assert browser.find_element(By.ID, "reply-size").text == "0 / 160 bytes"

    # when she answers from the reply area
    answer(browser, wait, ["Thanks, reading 4411 noted."])

    # then the SMS gateway's webhook receives it, signed, for the customer's number, as plain text
    [sent] = receivers["sms"].wait_for(1)
    assert signed(sent)
    assert sent.json()["type"] == "Text" and sent.json()["text"] == "Thanks, reading 4411 noted."
    assert sent.json()["channel"]["to"]["id"] == PHONE
    assert Message.objects.get(interaction=texting, direction="outbound").payload["type"] == "Text"
    assert not browser.find_elements(By.CSS_SELECTOR, "#transcript .msg-subject")
    reply_area_shows_no_whatsapp_window(browser)
    # and once the gateway took it, the page says so (no longer "Sending...")
    wait.until(lambda driver: driver.find_element(By.CSS_SELECTOR, "#transcript .msg-out .receipt").text == "Sent")
    shot(browser, "sms")

    # and Done with a disposition ends it
    done(browser, wait, texting)

    # --- e-mail ------------------------------------------------------------------------------------------------
    # when a customer writes to the support address, which the e-mail relay posts to /nexus
    nexus(server, email, {
        "type": "Email", "subject": "Order 42 arrived broken",
        "content": [{"type": "text", "text": "The lamp of order 42 arrived broken.\nCan you replace it?"},
                    {"type": "html", "text": "<p>The lamp of order 42 arrived broken.<br>Can you replace it?</p>"}],
        "channel": {"messageId": "mail-1", "from": {"id": ADDRESS}, "to": {"id": email.business_id}}})

    # then ann is offered it as an e-mail, with its subject, and accepts it
    accept_offer(browser, wait, words="arrived broken", meta="E-mail · queue 1:email")
    mailing = Interaction.objects.get(channel=email, assigned_to=ann)
    header = browser.find_element(By.ID, "conversation-subject")
    assert header.text == "Subject: Order 42 arrived broken"
    first = browser.find_element(By.CSS_SELECTOR, "#transcript .msg-in")
    assert first.find_element(By.CLASS_NAME, "msg-subject").text == "Order 42 arrived broken"
    assert "Can you replace it?" in first.text
    reply_area_shows_no_whatsapp_window(browser)
    assert browser.find_element(By.ID, "reply-size").text == "0 bytes"  # no maximum for an e-mail

    # when she answers on two lines, longer than the WhatsApp size option (an e-mail is not held to it)
    long_line = "We are sorry about the lamp. " * 8
    answer(browser, wait, ["Hello Maria,", long_line.strip()])

    # then the relay's webhook receives the spec's e-mail: "Re: " and the subject, text and HTML, the reply address
    [sent] = receivers["email"].wait_for(1)
    assert signed(sent)
    mail = sent.json()
    assert mail["type"] == "Email" and mail["subject"] == "Re: Order 42 arrived broken"
    assert mail["channel"]["to"]["id"] == ADDRESS
    assert mail["content"][0] == {"type": "text", "text": f"Hello Maria,\n{long_line.strip()}"}
    assert mail["content"][1]["type"] == "html" and "Hello Maria,<br>" in mail["content"][1]["text"]
    assert mail["context"] == {"replyTo": {"id": "support@company.com", "name": "Support"}}
    # and the transcript shows the answer as the e-mail it became: its subject, and the text she wrote
    shown = browser.find_element(By.CSS_SELECTOR, "#transcript .msg-out")
    assert shown.find_element(By.CLASS_NAME, "msg-subject").text == "Re: Order 42 arrived broken"
    assert shown.find_element(By.CLASS_NAME, "msg-text").text == f"Hello Maria,\n{long_line.strip()}"

    # when the customer answers the e-mail, it arrives live (the stream's event), with its subject
    nexus(server, email, {
        "type": "Email", "subject": "Re: Order 42 arrived broken", "content": [{"type": "text", "text": "Thank you!"}],
        "channel": {"messageId": "mail-2", "from": {"id": ADDRESS}, "to": {"id": email.business_id}}})
    answered = message_shown(wait, "#transcript .msg-in", "Thank you!")
    assert answered.find_element(By.CLASS_NAME, "msg-subject").text == "Re: Order 42 arrived broken"
    wait.until(lambda driver: not driver.find_element(By.ID, "flash").is_displayed())  # the SMS's "Done" notice
    shot(browser, "email")
    assert len(receivers["sms"].received) == 1  # nothing more went to the SMS gateway

    # and Done with a disposition ends it
    done(browser, wait, mailing)
