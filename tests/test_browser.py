"""Headless Chromium logs into the admin and creates a channel, as an administrator would."""

import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from channels_app.models import Channel
from tests.conftest import require_or_skip

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"

pytestmark = pytest.mark.browser


@pytest.fixture
def browser(tmp_path):
    require_or_skip(
        bool(shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
        "Debian's chromium and chromium-driver are not installed",
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1600",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_administrator_logs_in_and_creates_a_channel(browser, live_server, django_user_model, tenant):
    # given an administrator
    django_user_model.objects.create_superuser("admin", password="browser-pass-123")
    wait = WebDriverWait(browser, 20)

    # when they log in
    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys("browser-pass-123")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait.until(expected_conditions.url_matches(r"/admin/$"))

    # and fill in the new channel form
    browser.get(f"{live_server.url}/admin/channels_app/channel/add/")
    browser.find_element(By.NAME, "channel_id").send_keys("channel-whatsapp-REAL")
    browser.find_element(By.NAME, "name").send_keys("WhatsApp production")
    Select(browser.find_element(By.NAME, "tenant")).select_by_value("1")
    Select(browser.find_element(By.NAME, "media_type")).select_by_value("whatsapp")
    browser.find_element(By.NAME, "business_id").send_keys("+1 925 111 2222")
    Select(browser.find_element(By.NAME, "transport")).select_by_value("webhook")
    browser.find_element(By.NAME, "webhook_url").send_keys("https://hub.example.com/webhook")
    browser.find_element(By.NAME, "inbound_route_by_call").send_keys("1:session-chat")
    browser.find_element(By.NAME, "endpoints-0-queue_key").send_keys("1:session-chat")
    browser.find_element(By.NAME, "_save").click()

    # then the channel list shows it, with its number normalized and a generated secret
    wait.until(expected_conditions.url_matches(r"/admin/channels_app/channel/$"))
    assert "channel-whatsapp-REAL" in browser.page_source
    channel = Channel.objects.get(channel_id="channel-whatsapp-REAL")
    assert channel.business_id == "19251112222"
    assert channel.secret
    assert list(channel.endpoints.values_list("queue_key", flat=True)) == ["1:session-chat"]
    # and the generated secret is shown this once, on the page after saving
    assert channel.secret in browser.page_source
    browser.get(f"{live_server.url}/admin/channels_app/channel/")
    assert channel.secret not in browser.page_source


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_whatsapp_agent_of_tenant_1_sees_only_tenant_1s_interactions(browser, live_server, tenant):
    from tests.conftest import member
    from tests.test_authorization import _world

    # given a conversation in each of two tenants, and an agent of tenant 1
    home, away = _world(1, "home"), _world(2, "away")
    member("agent", "WhatsApp agent", tenants=[tenant], password="agent-pass-123")
    wait = WebDriverWait(browser, 20)

    # when the agent logs in and opens the interactions
    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("agent")
    browser.find_element(By.NAME, "password").send_keys("agent-pass-123")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait.until(expected_conditions.url_matches(r"/admin/$"))
    browser.get(f"{live_server.url}/admin/channels_app/interaction/")

    # then only tenant 1's conversation is there, not even the other channel as a filter
    page = browser.page_source
    assert home["interaction"] in page
    assert away["interaction"] not in page and "channel-away" not in page
    browser.save_screenshot(str(SCREENSHOTS / "agent-interactions.png"))
    # and the other tenant's interaction can't be opened by its address
    browser.get(f"{live_server.url}/admin/channels_app/interaction/{away['interaction']}/change/")
    assert "channel-away" not in browser.page_source


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_agent_added_in_the_admin_signs_in(browser, live_server, django_user_model, tenant):
    from channels_app.services.roles import roles_ensure_default_groups

    # given an administrator signed in (issue 22, item 4: an agent added in the admin could not sign in)
    roles_ensure_default_groups()  # a flushed database (transactional test) has lost the default groups
    django_user_model.objects.create_superuser("admin", password="browser-pass-123")
    wait = WebDriverWait(browser, 20)

    def sign_in(username: str, password: str):
        browser.delete_all_cookies()
        browser.get(f"{live_server.url}/admin/login/")
        browser.find_element(By.NAME, "username").send_keys(username)
        browser.find_element(By.NAME, "password").send_keys(password)
        browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    sign_in("admin", "browser-pass-123")
    wait.until(expected_conditions.url_matches(r"/admin/$"))

    # when they add an agent of tenant 1 on the add page, its tenant and role chosen there
    browser.get(f"{live_server.url}/admin/auth/user/add/")
    browser.find_element(By.NAME, "username").send_keys("ann")
    browser.find_element(By.NAME, "password1").send_keys("ann-agent-pass-123")
    browser.find_element(By.NAME, "password2").send_keys("ann-agent-pass-123")
    browser.find_element(By.CSS_SELECTOR, "input[name=tenants][value='1']").click()
    agent_role = browser.find_element(By.XPATH, "//label[normalize-space()='WhatsApp agent']/input")
    agent_role.click()
    assert browser.find_element(By.NAME, "is_staff").is_selected()  # "may sign in" is ticked already
    browser.save_screenshot(str(SCREENSHOTS / "user-add.png"))
    browser.find_element(By.NAME, "_save").click()
    wait.until(expected_conditions.url_matches(r"/admin/auth/user/\d+/change/$"))

    # then the agent signs in and its home page lists what an agent may open
    sign_in("ann", "ann-agent-pass-123")
    wait.until(expected_conditions.url_matches(r"/admin/$"))
    assert "Interactions" in browser.page_source and "Users" not in browser.page_source
    browser.save_screenshot(str(SCREENSHOTS / "agent-home.png"))

    # and an account that may not sign in is told why, not that its password is wrong
    django_user_model.objects.filter(username="ann").update(is_staff=False)
    sign_in("ann", "ann-agent-pass-123")
    error = wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".errornote")))
    assert "Staff status" in error.text and "correct username and password" not in error.text
    browser.save_screenshot(str(SCREENSHOTS / "login-refused.png"))


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_transcript_shows_a_timestamp_out_of_chronological_order_in_red(browser, live_server, channel,
                                                                             django_user_model):
    from datetime import timedelta

    from django.utils import timezone

    from channels_app.services.interactions import customer_message_receive, message_queue_outbound

    # given: a message written ten minutes before the one above it, which arrived first
    django_user_model.objects.create_superuser("admin", password="browser-pass-123")
    now = timezone.now()
    first, _ = customer_message_receive(channel=channel, client_id="15556667777", text="Hello, is my bill ready?",
                                        channel_message_id="m1", nickname="Johnny",
                                        origin_time=now - timedelta(seconds=3))
    message_queue_outbound(interaction=first.interaction, payload={"type": "Text", "text": "Let me check."})
    late, _ = customer_message_receive(channel=channel, client_id="15556667777",
                                       text="(sent earlier) My account is 4411", channel_message_id="m2",
                                       origin_time=now - timedelta(minutes=10))
    customer_message_receive(channel=channel, client_id="15556667777", text="Thanks!", channel_message_id="m3")
    wait = WebDriverWait(browser, 20)

    # when the administrator opens the interaction
    admin_sign_in(browser, live_server, wait)
    browser.get(f"{live_server.url}/admin/channels_app/interaction/{first.interaction_id}/change/")

    # then the late message's origin time is red, and only it
    marked = browser.find_elements(By.CSS_SELECTOR, ".transcript .out-of-order")
    assert len(marked) == 1
    assert marked[0].find_element(By.XPATH, "ancestor::div[@data-message-id]").get_attribute(
        "data-message-id") == late.pk
    assert marked[0].value_of_css_property("color") in ("rgba(204, 0, 0, 1)", "rgb(204, 0, 0)")
    assert "out of chronological order" in marked[0].get_attribute("title")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", marked[0])
    browser.save_screenshot(str(SCREENSHOTS / "transcript-out-of-order.png"))


def admin_sign_in(browser, live_server, wait, username="admin", password="browser-pass-123"):
    """Sign in at the admin's login page and wait for its home page."""
    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait.until(expected_conditions.url_matches(r"/admin/$"))


def _log_in_as_superuser(browser, live_server, django_user_model, wait):
    django_user_model.objects.create_superuser("admin", password="browser-pass-123")
    admin_sign_in(browser, live_server, wait)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_connecting_a_cloud_channel_and_a_hub_channel(browser, live_server, django_user_model, tenant, channel):
    from tests.factories import ChannelFactory

    # given a WhatsApp Cloud API channel and a hub channel, and an administrator
    cloud = ChannelFactory(
        channel_id="channel-wa-cloud", name="WhatsApp Cloud", tenant=tenant, media_type="whatsapp",
        transport="whatsapp_cloud", business_id="15550783881", phone_number_id="106540352242922",
        waba_id="102290129340398", access_token="EAAG-token", app_secret="meta-app-secret", verify_token="typed",
        endpoints=["1:session-chat"], inbound_route_by_call="1:session-chat",
    )
    wait = WebDriverWait(browser, 20)
    _log_in_as_superuser(browser, live_server, django_user_model, wait)

    # the add page has no circuit (nothing has been delivered yet)
    browser.get(f"{live_server.url}/admin/channels_app/channel/add/")
    assert "Consecutive failures" not in browser.page_source and "Circuit" not in browser.page_source
    browser.save_screenshot(str(SCREENSHOTS / "22a-add-channel.png"))

    # when they open the Cloud channel's page, the panel gives Meta's callback URL, not /nexus
    browser.get(f"{live_server.url}/admin/channels_app/channel/{cloud.pk}/change/")
    panel = browser.find_element(By.ID, "channel-connect")
    assert "/whatsapp/channel-wa-cloud/webhook" in panel.text
    assert "/nexus/" not in panel.text and "message_template_status_update" in panel.text
    browser.save_screenshot(str(SCREENSHOTS / "22a-cloud-channel.png"))

    # and rotating the verify token asks first, then shows the new one once
    browser.find_element(By.ID, "rotate-verify-token").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "rotate-confirm")))
    browser.find_element(By.ID, "rotate-confirm").click()
    wait.until(expected_conditions.presence_of_element_located((By.CLASS_NAME, "dms-secret-value")))
    cloud.refresh_from_db()
    assert browser.find_element(By.CLASS_NAME, "dms-secret-value").text == cloud.verify_token != "typed"

    # when they open the hub channel's page, the panel gives the /nexus URL and the secret
    browser.get(f"{live_server.url}/admin/channels_app/channel/{channel.pk}/change/")
    panel = browser.find_element(By.ID, "channel-connect")
    assert f"/nexus/v3/channels/{channel.channel_id}/messages" in panel.text
    browser.save_screenshot(str(SCREENSHOTS / "22a-hub-channel.png"))

    # and rotating the secret asks first, with a grace period for the old one
    old = channel.secret
    browser.find_element(By.ID, "rotate-secret").click()
    grace = wait.until(expected_conditions.presence_of_element_located((By.NAME, "grace_hours")))
    grace.clear()
    grace.send_keys("2")
    browser.save_screenshot(str(SCREENSHOTS / "22a-rotate-secret.png"))
    browser.find_element(By.ID, "rotate-confirm").click()
    wait.until(expected_conditions.presence_of_element_located((By.CLASS_NAME, "dms-secret-value")))
    channel.refresh_from_db()
    assert browser.find_element(By.CLASS_NAME, "dms-secret-value").text == channel.secret != old
    assert "still accepted until" in browser.page_source
    browser.save_screenshot(str(SCREENSHOTS / "22a-secret-rotated.png"))
    assert channel.previous_secret == old
