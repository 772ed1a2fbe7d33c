"""Headless Chromium: two agents in two browsers handle a customer's conversation in the workspace
(`/workspace/`): one rejects the offer, the other accepts it with the keyboard and answers, and the customer's
webhook (a real receiver on 127.0.0.1) receives the answer; a transfer, a conference, a note, Done with a
disposition; the event stream drops and comes back, and the page says so. Screenshots of each state go to
docs/screenshots/workspace-*.png.

The page is served by an ASGI server in this process (uvicorn on Django's ASGI application, as the event
server runs it), so that the page, the API and the event stream share one origin, as in production."""

import hashlib
import hmac
import json
import threading
import urllib.request
from pathlib import Path

import pytest
from django.db import connection
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from channels_app.models import Interaction, InteractionNote, Message, Offer, Queue
from channels_app.options_catalog import IW
from channels_app.services.business_attributes import business_attributes_ensure_required
from channels_app.services.options import option_set
from tests.conftest import member, require_or_skip
from tests.factories import ChannelFactory, TenantFactory
from tests.test_browser import CHROMEDRIVER, CHROMIUM
from tests.workers import poll_until, require_shared_database

pytestmark = [pytest.mark.browser, pytest.mark.slow]
DOCS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
SECRET = "channel-secret"


class AsgiServer:
    """uvicorn serving Django's ASGI application (static files too) in a thread of this process, on the
    test database; `stop()` ends it (open event streams are cut), `AsgiServer(port=...)` starts it again."""

    def __init__(self, port: int = 0):
        import uvicorn
        from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
        from django.core.asgi import get_asgi_application

        config = uvicorn.Config(ASGIStaticFilesHandler(get_asgi_application()), host="127.0.0.1", port=port,
                                lifespan="off", log_level="warning", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        poll_until(lambda: self.server.started, 20, "the ASGI server to start")
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "the ASGI server did not stop"


def _chromium(profile: Path):
    require_or_skip(bool(Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                    "Debian's chromium and chromium-driver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,800",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture
def browsers(tmp_path):
    opened = []

    def open_one():
        driver = _chromium(tmp_path / f"profile-{len(opened)}")
        opened.append(driver)
        return driver

    yield open_one
    for driver in opened:
        driver.quit()


@pytest.fixture
def server():
    require_shared_database()  # the server's threads read what the test commits
    running = AsgiServer()
    yield running
    running.server.should_exit = True
    running.thread.join(timeout=15)
    # The server's threads kept their database connections (CONN_MAX_AGE): end them, so that the test
    # database can be flushed and dropped.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")


@pytest.fixture
def dispatcher():
    """`manage.py dispatch` in a thread: it sends the agents' messages to the hub and sweeps expired offers."""
    from channels_app.dispatcher import Dispatcher

    running = Dispatcher(threads=1, poll_seconds=0.2, sweep_seconds=0.2)
    thread = threading.Thread(target=running.run, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    yield running
    running.stop()
    thread.join(timeout=10)


def customer_writes(server: AsgiServer, channel, text: str, message_id: str, client: str = "15556667777") -> None:
    """The customer's message, as the third-party messaging system posts it to /nexus (signed)."""
    nexus(server, channel, {
        "type": "Text", "text": text,
        "channel": {"messageId": message_id, "from": {"id": client, "nickname": "Maria"},
                    "to": {"id": channel.business_id}},
    })


def nexus(server: AsgiServer, channel, message: dict) -> None:
    """One message of the channel's third-party system, posted to /nexus as it does it (signed)."""
    body = json.dumps({"messages": [message]}).encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    request = urllib.request.Request(
        f"{server.url}/nexus/v3/channels/{channel.channel_id}/messages", data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature": f"sha1={signature}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def sign_in(browser, server: AsgiServer, username: str, connected: bool = True) -> WebDriverWait:
    """/workspace/ sends to the admin's login and back (and the page connects to its event stream)."""
    # The list of conversations is drawn again on every event: an element found may be gone a moment later.
    wait = WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,))
    browser.get(f"{server.url}/workspace/")
    wait.until(expected_conditions.url_contains("/admin/login/"))
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(f"{username}-pass-123")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait.until(expected_conditions.url_contains("/workspace/"))
    if connected:
        wait.until(lambda driver: driver.find_element(By.ID, "connection").get_attribute("data-state") == "connected")
    return wait


def go_ready(browser, wait, ready: bool = True) -> None:
    """Ready (or not) for WhatsApp, by its toggle in the top bar."""
    browser.find_element(By.CSS_SELECTOR, '#ready input[value="whatsapp"]').click()
    wait.until(lambda driver: driver.find_element(By.CSS_SELECTOR, '#ready input[value="whatsapp"]')
               .find_element(By.XPATH, "..").get_attribute("data-ready") == ("yes" if ready else "no"))


def offers_of(browser) -> list:
    return browser.find_elements(By.CSS_SELECTOR, "#offers .offer")


def shot(browser, name: str) -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(DOCS / f"workspace-{name}.png"))


def dialog(browser, wait, action: str, dialog_id: str):
    browser.find_element(By.CSS_SELECTOR, f'#actions button[data-action="{action}"]').click()
    wait.until(lambda driver: driver.find_element(By.ID, dialog_id).get_attribute("open") is not None)
    return browser.find_element(By.ID, dialog_id)


def wait_for_options(wait, select_element, count: int = 1):
    wait.until(lambda driver: len(select_element.find_elements(By.TAG_NAME, "option")) >= count)
    return Select(select_element)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_agents_handle_a_customer_in_the_workspace(browsers, server, dispatcher, receiver):
    # given a WhatsApp channel whose hub is a real receiver, a queue routed by the server with ann and bob
    business_attributes_ensure_required()  # the Disposition Code values (a flushed database lost them)
    tenant = TenantFactory(id=1, name="Environment")
    channel = ChannelFactory(channel_id="channel-whatsapp-REAL", name="WhatsApp", tenant=tenant, media_type="whatsapp",
                             transport="webhook", business_id="19251112222", webhook_url=receiver.url, secret=SECRET,
                             endpoints=["1:session-chat"], inbound_route_by_call="1:session-chat")
    ann = member("ann", "WhatsApp agent", tenants=[tenant])
    bob = member("bob", "WhatsApp agent", tenants=[tenant])
    ann.first_name, ann.last_name = "Ann", "Archer"
    ann.save()
    queue = Queue.objects.create(tenant=tenant, key="1:session-chat", routing="workspace", offer_timeout_seconds=60)
    queue.agents.set([ann, bob])
    member("planner", "Campaign manager", tenants=[tenant])
    # and the desktop options of the WhatsApp guide set (item 6 of issue 24)
    for name, value in [("whatsappsession.pending-response-to-customer", "2,4"),
                        ("whatsappsession.on-hold-queue", "1:on-hold"),
                        ("workbin.whatsappsession.in-progress", "async-chat-main-workbin")]:
        option_set(section=IW, name=name, value=value)

    # a user without the workspace is told why
    planner = browsers()
    sign_in(planner, server, "planner", connected=False)
    assert "The workspace is not for this account" in planner.page_source
    assert "channels_app.use_workspace" in planner.page_source
    shot(planner, "forbidden")

    by_name = {"ann": browsers(), "bob": browsers()}
    waits = {name: sign_in(driver, server, name) for name, driver in by_name.items()}
    assert by_name["ann"].find_element(By.ID, "workbin").text == "Workbin: async-chat-main-workbin"
    shot(by_name["ann"], "signed-in")

    # when both go ready and the customer writes through /nexus
    for name in ("ann", "bob"):
        go_ready(by_name[name], waits[name])
    customer_writes(server, channel, "Hello, my bill is wrong", "m-1")

    # then one of them gets the offer, with its preview; they reject it
    first = poll_until(lambda: next((name for name, driver in by_name.items() if offers_of(driver)), None), 20,
                       "an offer in one of the browsers")
    other = "bob" if first == "ann" else "ann"
    offer = offers_of(by_name[first])[0]
    waits[first].until(lambda driver: "Hello, my bill is wrong" in offer.text)
    assert "New interaction: Maria" in offer.text and "WhatsApp · queue 1:session-chat" in offer.text
    assert "Accept" in offer.text and "Reject" in offer.text
    shot(by_name[first], "offer")
    offer.find_element(By.CSS_SELECTOR, 'button[data-answer="reject"]').click()
    waits[first].until(lambda driver: not offers_of(driver))

    # and the other agent gets it and accepts it with the keyboard (Alt+A)
    waits[other].until(lambda driver: offers_of(driver))
    by_name[other].find_element(By.TAG_NAME, "body").send_keys(Keys.ALT, "a")
    waits[other].until(expected_conditions.visibility_of_element_located((By.ID, "conversation")))
    interaction = poll_until(lambda: Interaction.objects.filter(channel=channel, assigned_to__isnull=False).first(),
                             10, "the offer to be accepted")
    assert interaction.assigned_to.username == other
    title = by_name[other].find_element(By.ID, "conversation-title").text
    assert "Maria" in title, title  # the customer's nickname (interaction.window-title)
    # a freshly drawn entry shows its waiting time at the next tick of the page's one-second timer (tickWaiting)
    entry = f'#conversations a[data-interaction="{interaction.pk}"]'
    waits[other].until(lambda driver: "waiting" in driver.find_element(By.CSS_SELECTOR, entry).text)
    item = by_name[other].find_element(By.CSS_SELECTOR, entry)
    assert "Maria" in item.text and "waiting" in item.text

    # when the agent answers (the reply area's request: POST /api/interactions/{id}/messages/)
    answer = by_name[other].execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "DMS.api(`/api/interactions/${DMS.open.id}/messages/`, {method: 'POST', body: {text: 'Let me check that'}})"
        ".then(done, (error) => done({error: error.message}));")
    assert answer.get("status") == "queued", answer

    # then the customer's webhook receives it (sent by the dispatcher), signed
    received = receiver.wait_for(1)[0]
    assert received.json()["text"] == "Let me check that"
    assert received.json()["channel"]["to"]["id"] == "15556667777"
    assert received.headers["X-Hub-Signature"] == "sha1=" + hmac.new(SECRET.encode(), received.body,
                                                                     hashlib.sha1).hexdigest()

    # and a second customer message makes the conversation wait again, in the list: it blinks
    # (new-message-blinking) and its waiting time turns yellow, then red (pending-response-to-customer 2,4)
    customer_writes(server, channel, "Thanks, I wait", "m-2")
    listed = f'#conversations a[data-interaction="{interaction.pk}"]'
    waits[other].until(lambda driver: "Thanks, I wait" in driver.find_element(By.CSS_SELECTOR, listed).text)
    waits[other].until(lambda driver: "blinking" in driver.find_element(By.CSS_SELECTOR, listed).get_attribute("class"))
    assert by_name[other].find_element(By.CSS_SELECTOR, '#actions button[data-action="hold"]').is_displayed()
    waits[other].until(lambda driver: driver.find_element(By.CSS_SELECTOR, f"{listed} .waiting")
                       .get_attribute("data-tone") == "red")
    assert "waited" in by_name[other].find_element(By.ID, "pending-response").text
    waits[other].until(lambda driver: "blinking" not in driver.find_element(By.CSS_SELECTOR, listed)
                       .get_attribute("class"))
    shot(by_name[other], "conversation")

    # when the agent adds a note
    note = dialog(by_name[other], waits[other], "note", "dialog-note")
    note.find_element(By.NAME, "text").send_keys("Bill of March, twice")
    note.find_element(By.CSS_SELECTOR, 'button[value="ok"]').click()
    waits[other].until(lambda driver: driver.find_element(By.ID, "dialog-note").get_attribute("open") is None)
    assert list(InteractionNote.objects.values_list("text", flat=True)) == ["Bill of March, twice"]

    # and transfers the conversation to the first agent, who accepts it
    transfer = dialog(by_name[other], waits[other], "transfer", "dialog-transfer")
    target = wait_for_options(waits[other], transfer.find_element(By.NAME, "agent"))
    target.select_by_value(str((ann if first == "ann" else bob).pk))
    shot(by_name[other], "transfer")
    transfer.find_element(By.CSS_SELECTOR, 'button[value="ok"]').click()
    waits[first].until(lambda driver: offers_of(driver))
    assert "Transfer" in offers_of(by_name[first])[0].text
    offers_of(by_name[first])[0].find_element(By.CSS_SELECTOR, 'button[data-answer="accept"]').click()
    waits[first].until(expected_conditions.visibility_of_element_located((By.ID, "conversation")))
    poll_until(lambda: Interaction.objects.get(pk=interaction.pk).assigned_to.username == first, 10,
               "the transfer to be accepted")
    waits[other].until(lambda driver: not driver.find_elements(
        By.CSS_SELECTOR, f'#conversations a[data-interaction="{interaction.pk}"]'))

    # when the first agent invites the other to a conference, who accepts
    conference = dialog(by_name[first], waits[first], "conference", "dialog-conference")
    wait_for_options(waits[first], conference.find_element(By.NAME, "agent"))
    conference.find_element(By.CSS_SELECTOR, 'button[value="ok"]').click()
    waits[other].until(lambda driver: offers_of(driver))
    assert "Conference invitation" in offers_of(by_name[other])[0].text
    offers_of(by_name[other])[0].find_element(By.CSS_SELECTOR, 'button[data-answer="accept"]').click()

    # then both see it: the invited agent as a conference, and messages reach both lists
    waits[other].until(lambda driver: driver.find_elements(
        By.CSS_SELECTOR, f'#conversations li.conference a[data-interaction="{interaction.pk}"]'))
    customer_writes(server, channel, "Both of you?", "m-3")
    for name in (first, other):
        waits[name].until(lambda driver: "Both of you?" in driver.find_element(
            By.CSS_SELECTOR, f'#conversations a[data-interaction="{interaction.pk}"]').text)
    shot(by_name[other], "conference")

    # when the event stream drops (the server stops), the page says so, and says when it is back
    port = server.port
    server.stop()
    waits[first].until(lambda driver: driver.find_element(By.ID, "connection").get_attribute("data-state") == "lost")
    assert "reconnecting" in by_name[first].find_element(By.ID, "connection").text
    shot(by_name[first], "reconnecting")
    restarted = AsgiServer(port=port)
    server.server, server.thread = restarted.server, restarted.thread  # the fixture stops this one
    waits[first].until(lambda driver: driver.find_element(By.ID, "connection").get_attribute("data-state")
                       == "restored")
    assert by_name[first].find_element(By.ID, "connection").text == "Connected again"
    customer_writes(server, channel, "Still there?", "m-4")  # what comes after the reconnection arrives live
    waits[first].until(lambda driver: "Still there?" in driver.find_element(
        By.CSS_SELECTOR, f'#conversations a[data-interaction="{interaction.pk}"]').text)

    shot(by_name[first], "reconnected")
    by_name[first].set_window_size(1920, 1080)
    shot(by_name[first], "conversation-1920")
    by_name[first].set_window_size(1280, 800)

    # when the holder starts a new session on a channel of the outbound session config (its own, here)
    session = dialog(by_name[first], waits[first], "session", "dialog-session")
    channels = wait_for_options(waits[first], session.find_element(By.NAME, "channel"))
    assert [option.text for option in channels.options] == ["WhatsApp (whatsapp)"]
    session.find_element(By.NAME, "text").send_keys("About your other bill")
    session.find_element(By.CSS_SELECTOR, 'button[value="ok"]').click()
    new_session = poll_until(lambda: Interaction.objects.filter(channel=channel, type="Outbound").first(), 10,
                             "the new session")
    waits[first].until(lambda driver: driver.find_elements(
        By.CSS_SELECTOR, f'#conversations a[data-interaction="{new_session.pk}"]'))
    assert new_session.messages.get().text == "About your other bill"

    # when the holder ends the first with a disposition (Done)
    done = dialog(by_name[first], waits[first], "done", "dialog-done")
    disposition = wait_for_options(waits[first], done.find_element(By.NAME, "disposition"), 2)
    assert [option.text for option in disposition.options] == ["(none)", "Resolved", "Not Resolved", "Follow Up"]
    disposition.select_by_value("Resolved")
    shot(by_name[first], "done")
    done.find_element(By.CSS_SELECTOR, 'button[value="ok"]').click()

    # then it is ended with that disposition, and leaves both lists
    poll_until(lambda: Interaction.objects.get(pk=interaction.pk).state == "ended", 10, "the interaction to end")
    assert Interaction.objects.get(pk=interaction.pk).disposition == "Resolved"
    for name in (first, other):
        waits[name].until(lambda driver: not driver.find_elements(
            By.CSS_SELECTOR, f'#conversations a[data-interaction="{interaction.pk}"]'))
    assert Message.objects.filter(interaction=interaction, direction="outbound").count() == 1

    # when another customer writes and nobody answers the offer in time, it goes away by itself
    Queue.objects.filter(pk=queue.pk).update(offer_timeout_seconds=2)
    go_ready(by_name[other], waits[other], ready=False)  # only the first agent is ready now
    customer_writes(server, channel, "Anyone?", "m-5", client="15550001111")
    waits[first].until(lambda driver: offers_of(driver))
    expiring = offers_of(by_name[first])[0].get_attribute("data-offer")
    waits[first].until(lambda driver: not driver.find_elements(By.CSS_SELECTOR, f'.offer[data-offer="{expiring}"]'))
    poll_until(lambda: Offer.objects.get(pk=expiring).state == "expired", 10, "the dispatcher to expire it")

    # and the admin's home leads agents to the workspace
    by_name[first].get(f"{server.url}/admin/")
    link = by_name[first].find_element(By.LINK_TEXT, "Open the workspace")
    shot(by_name[first], "admin-link")
    link.click()
    waits[first].until(expected_conditions.url_matches(r"/workspace/$"))
