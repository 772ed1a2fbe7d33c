"""The outbound address rules (channels_app/outbound.py, API.md "Safe by default"): a webhook never reaches
an internal address, whatever its spelling; the connection goes to the address that was checked; nothing
follows a redirect; WEBHOOK_ALLOWED_NETWORKS allows some. Against a real receiver on 127.0.0.1."""

import ipaddress
import socket

import pytest
from django.utils import timezone

from channels_app.models import Channel, Delivery, DeliveryAttempt, DeliveryState
from channels_app.outbound import BlockedAddress, address_refusal, checked_connection, resolve_allowed
from channels_app.services.channels import channel_save
from channels_app.services.deliveries import delivery_attempt
from channels_app.services.interactions import message_queue_outbound
from channels_app.transports.base import OutgoingMessage, SendOutcome
from channels_app.transports.webhook import WebhookTransport
from tests.attacks import internal_address_spellings
from tests.factories import InteractionFactory


def _message(url: str) -> OutgoingMessage:
    return OutgoingMessage(message_id="m1", interaction_id="i1", channel_id="c", media_type="sms", business_id="1",
                           client_id="2", payload={"type": "Text", "text": "hi"}, webhook_url=url, secret="s")


@pytest.mark.parametrize("address", [
    "127.0.0.1", "::1", "::ffff:127.0.0.1", "10.1.2.3", "172.31.0.1", "192.168.1.1", "169.254.169.254", "fe80::1",
    "100.64.0.1", "100.127.255.254", "224.0.0.251", "ff02::1", "0.0.0.0", "::", "240.0.0.1", "255.255.255.255",
    "fc00::1", "64:ff9b::a9fe:a9fe", "2002:a00:1::1", "192.0.0.8", "198.18.0.1", "2001:db8::1",
])
def test_internal_addresses_are_refused(settings, address):
    settings.WEBHOOK_ALLOWED_NETWORKS = []

    assert address_refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(settings, address):
    settings.WEBHOOK_ALLOWED_NETWORKS = []

    assert address_refusal(ipaddress.ip_address(address)) is None


def test_allowed_networks_let_some_internal_addresses_through(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8", "fd00::/8"]

    assert address_refusal(ipaddress.ip_address("127.0.0.2")) is None
    assert address_refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None  # judged as its IPv4 address
    assert address_refusal(ipaddress.ip_address("fd12::1")) is None
    assert address_refusal(ipaddress.ip_address("10.0.0.1")) == "private"
    assert address_refusal(ipaddress.ip_address("::1")) == "loopback"


def test_no_spelling_of_an_internal_address_is_reached(settings, receiver):
    """The attack suite: every spelling of 127.0.0.1 (and of other internal addresses) at the port where a
    real receiver listens; not one request arrives, every attempt fails as `blocked address`, none retried."""
    # given a receiver on 127.0.0.1 and the rules as shipped (nothing allowed)
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    port = receiver.port
    urls = internal_address_spellings(port)

    # when a webhook is sent to each
    results = [WebhookTransport().send(_message(url)) for url in urls]

    # then none reached it
    assert [(url, r.outcome) for url, r in zip(urls, results, strict=True) if r.outcome != SendOutcome.FAILED] == []
    assert all(r.error.startswith("blocked address") for r in results), [r.error for r in results]
    assert all(r.status_code is None and r.response_excerpt == "" for r in results)
    assert receiver.received == []
    assert len(urls) >= 40


def test_the_connection_goes_to_the_checked_address_without_resolving_again(settings, receiver, monkeypatch):
    """DNS rebinding: the name resolves to an allowed address for the check and to another one after; the
    connection goes to the checked one, with the name in the Host header."""
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    port = receiver.port
    answers = iter(["127.0.0.1", "10.9.9.9", "10.9.9.9"])
    real_getaddrinfo = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        if host == "hook.rebind.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)

    result = WebhookTransport().send(_message(f"http://hook.rebind.test:{port}/hook"))

    assert result.outcome == SendOutcome.ACCEPTED, result.error
    request = receiver.wait_for(1)[0]
    assert request.headers["Host"] == f"hook.rebind.test:{port}"
    # the next send resolves again, and is refused: the name now points inside
    assert WebhookTransport().send(_message(f"http://hook.rebind.test:{port}/hook")).error.startswith(
        "blocked address: hook.rebind.test is 10.9.9.9")


def test_checked_connection_names_the_host_but_connects_to_the_address(receiver):
    port = receiver.port
    connection = checked_connection(scheme="http", host="hook.example", port=port, address="127.0.0.1", timeout=5)

    connection.request("POST", "/x", body=b"{}")
    response = connection.getresponse()
    response.read()
    connection.close()

    assert response.status == 200
    assert receiver.wait_for(1)[0].headers["Host"] == f"hook.example:{port}"


def test_a_name_resolving_to_an_internal_address_is_refused(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []

    with pytest.raises(BlockedAddress, match="localhost is 127.0.0.1|localhost is ::1"):
        resolve_allowed("localhost", 80)


def test_a_redirect_is_not_followed_and_fails_the_attempt(receiver):
    receiver.plan.append(302)

    result = WebhookTransport().send(_message(receiver.url))

    assert (result.outcome, result.status_code) == (SendOutcome.FAILED, 302)
    assert len(receiver.received) == 1


# --- on save ---------------------------------------------------------------------------------------------------------

CHANNEL = {"channel_id": "0123456789", "name": "SMS", "media_type": "sms", "transport": "webhook",
           "business_id": "0123456789", "retry_timeout_seconds": 300, "retry_attempts": 3, "tenant": 1}


@pytest.mark.django_db
@pytest.mark.parametrize("url", [
    "http://127.0.0.1:5432/", "http://localhost:9912/", "http://169.254.169.254/latest/meta-data/",
    "http://2130706433/", "http://0177.0.0.1/", "http://0x7f.1/", "http://[::ffff:127.0.0.1]/", "http://[::1]:8000/",
    "http://10.0.0.5/hook", "https://192.168.1.1/hook",
])
def test_saving_an_internal_webhook_url_is_400_naming_webhook_url(staff_api, tenant, settings, url):
    settings.WEBHOOK_ALLOWED_NETWORKS = []

    response = staff_api.post("/api/channels/", {**CHANNEL, "webhook_url": url}, format="json")

    # then refused on webhook_url (as a blocked address, or as no URL at all for spellings Django's URL
    # validator already refuses)
    assert response.status_code == 400, response.json()
    assert response.json()["webhook_url"][0].startswith(("blocked address", "Enter a valid URL"))
    assert not Channel.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["https://user:pass@hooks.example.com/", "https://user@hooks.example.com/",
                                 "https://:token@hooks.example.com/"])
def test_a_webhook_url_with_credentials_is_400_naming_webhook_url(staff_api, tenant, url):
    response = staff_api.post("/api/channels/", {**CHANNEL, "webhook_url": url}, format="json")

    assert response.status_code == 400, response.json()
    assert "webhook_url" in response.json()
    assert not Channel.objects.exists()


@pytest.mark.django_db
def test_an_allowed_network_may_be_saved(staff_api, tenant, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]

    response = staff_api.post("/api/channels/", {**CHANNEL, "webhook_url": "http://127.0.0.1:9/hook"}, format="json")

    assert response.status_code == 201, response.json()


@pytest.mark.django_db
def test_the_admin_form_refuses_an_internal_webhook_url(admin_client, tenant, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []

    response = admin_client.post("/admin/channels_app/channel/add/", {
        "channel_id": "c-1", "name": "SMS", "tenant": tenant.pk, "media_type": "sms", "transport": "webhook",
        "business_id": "0123456789", "webhook_url": "http://169.254.169.254/latest/meta-data/",
        "retry_timeout_seconds": 300, "retry_attempts": 3, "enabled": "on",
        "options-TOTAL_FORMS": "0", "options-INITIAL_FORMS": "0",
    })

    assert response.status_code == 200
    assert "blocked address" in response.content.decode()
    assert not Channel.objects.exists()


# --- at send time ----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_webhook_to_a_blocked_address_fails_at_once_without_retry(webhook_channel, receiver, settings,
                                                                    django_capture_on_commit_callbacks):
    # given a message queued while the receiver's network was allowed
    interaction = InteractionFactory(channel=webhook_channel, client_id="15556667777", queue="1:session-chat",
                                     outbound=True, user_data={})
    with django_capture_on_commit_callbacks(execute=False):
        message = message_queue_outbound(interaction=interaction, payload={"type": "Text", "text": "hi"})

    # when the operator no longer allows it, and the webhook is sent
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    result = delivery_attempt(delivery_id=message.delivery.pk)

    # then one failed attempt, `blocked address`, no answer to show, not retried
    assert result.outcome == SendOutcome.FAILED
    delivery = Delivery.objects.get(pk=message.delivery.pk)
    assert delivery.state == DeliveryState.FAILED
    assert delivery.attempts == 1
    assert delivery.last_error.startswith("blocked address")
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert (attempt.outcome, attempt.status_code, attempt.response_excerpt) == ("failed", None, "")
    message.refresh_from_db()
    assert message.status == "failed"
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert delivery_attempt(delivery_id=delivery.pk) is None
    assert receiver.received == []


@pytest.mark.django_db
def test_channel_save_refuses_a_blocked_url_for_every_door(tenant, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    from channels_app.errors import InvalidFields

    with pytest.raises(InvalidFields) as error:
        channel_save(channel=Channel(channel_id="c-2", name="x", tenant=tenant, media_type="sms", transport="webhook",
                                     business_id="12345", webhook_url="http://10.0.0.8:9/hook"))

    assert list(error.value.errors) == ["webhook_url"]


@pytest.mark.django_db
def test_the_delivery_page_shows_no_answer_for_a_blocked_target(admin_client, webhook_channel, receiver, settings,
                                                                 django_capture_on_commit_callbacks):
    # given one attempt to an allowed receiver (its answer is shown) and one to a blocked target
    interaction = InteractionFactory(channel=webhook_channel, client_id="15556667777", queue="1:session-chat",
                                     outbound=True, user_data={})
    with django_capture_on_commit_callbacks(execute=False):
        allowed = message_queue_outbound(interaction=interaction, payload={"type": "Text", "text": "one"})
        blocked = message_queue_outbound(interaction=interaction, payload={"type": "Text", "text": "two"})
    delivery_attempt(delivery_id=allowed.delivery.pk)
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    delivery_attempt(delivery_id=blocked.delivery.pk)

    # when the operator opens both delivery pages
    allowed_page = admin_client.get(f"/admin/channels_app/delivery/{allowed.delivery.pk}/change/").content.decode()
    blocked_page = admin_client.get(f"/admin/channels_app/delivery/{blocked.delivery.pk}/change/").content.decode()

    # then the allowed one shows the answer's status and excerpt, the blocked one only why nothing was sent
    assert f"ext-{allowed.pk}" in allowed_page and ">200<" in allowed_page
    assert "blocked address" in blocked_page
    assert "messageId" not in blocked_page and ">200<" not in blocked_page


def test_a_connection_that_timed_out_is_not_reused(receiver, monkeypatch):
    """After a timeout the next webhook opens a new connection to the checked address (the pool is keyed by
    it): reusing the one still waiting for its answer was `CannotSendRequest`."""
    from channels_app.transports import webhook

    monkeypatch.setattr(webhook, "WEBHOOK_TIMEOUT_SECONDS", 0.3)
    receiver.plan.extend(["hang:1", 200])

    first = WebhookTransport().send(_message(receiver.url))
    second = WebhookTransport().send(_message(receiver.url))

    assert (first.outcome, second.outcome) == (SendOutcome.RETRY, SendOutcome.ACCEPTED), second.error
