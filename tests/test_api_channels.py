import pytest

from channels_app.models import Channel, Endpoint

VALID = {
    "channel_id": "0123456789",
    "name": "SMS gateway",
    "media_type": "sms",
    "transport": "webhook",
    "business_id": "0123456789",
    "webhook_url": "https://sms.example.com/hook",
    "retry_timeout_seconds": 300,
    "retry_attempts": 3,
    "tenant": 1,
}


@pytest.mark.django_db
def test_create_channel_shows_its_generated_secret_once(staff_api, tenant):
    response = staff_api.post("/api/channels/", VALID, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["has_secret"] is True
    stored = Channel.objects.get(channel_id="0123456789")
    assert len(stored.secret) == 64
    assert body["secret"] == stored.secret  # shown in the answer that created it...
    for page in ("/api/channels/0123456789/", "/api/channels/"):  # ...and never again
        assert stored.secret not in staff_api.get(page).content.decode()


@pytest.mark.django_db
def test_a_given_secret_is_not_echoed(staff_api, tenant):
    response = staff_api.post("/api/channels/", {**VALID, "secret": "given-secret-1"}, format="json")

    assert response.status_code == 201
    assert "secret" not in response.json()


@pytest.mark.django_db
def test_rotate_secret_replaces_it_and_shows_the_new_one_once(staff_api, channel):
    old = channel.secret

    response = staff_api.post(f"/api/channels/{channel.channel_id}/rotate-secret/")

    assert response.status_code == 200
    new = response.json()["secret"]
    channel.refresh_from_db()
    assert channel.secret == new != old and len(new) == 64
    assert new not in staff_api.get(f"/api/channels/{channel.channel_id}/").content.decode()


@pytest.mark.django_db
def test_create_channel_keeps_a_given_secret_and_endpoints(staff_api, tenant):
    payload = {**VALID, "secret": "s3cret", "endpoints": ["1:sms-in", "1:sms-out"], "inbound_route_by_call": "1:sms-in"}

    response = staff_api.post("/api/channels/", payload, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["endpoints"] == ["1:sms-in", "1:sms-out"]
    assert response.json()["inbound_route_by_call"] == "1:sms-in"
    assert Channel.objects.get(channel_id="0123456789").secret == "s3cret"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"webhook_url": "ftp://example.com/hook"}, "webhook_url"),
        ({"webhook_url": ""}, "webhook_url"),
        ({"media_type": "whatsapp", "business_id": "12"}, "business_id"),
        ({"media_type": "email", "business_id": "not-an-address"}, "business_id"),
        ({"media_type": "fax"}, "media_type"),
        ({"transport": "pigeon"}, "transport"),
        ({"channel_id": "has space"}, "channel_id"),
        ({"tenant": 99}, "tenant"),
        ({"endpoints": ["99:session-chat"]}, "endpoints"),
        ({"endpoints": ["session-chat"]}, "endpoints"),
        ({"endpoints": ["1:a", "1:a"]}, "endpoints"),
        ({"inbound_route_by_call": "2:queue"}, "inbound_route_by_call"),
        ({"retry_attempts": -1}, "retry_attempts"),
        ({"retry_timeout_seconds": 0}, "retry_timeout_seconds"),
    ],
)
def test_invalid_channel_is_400_naming_the_field_and_writes_nothing(staff_api, tenant, change, field):
    response = staff_api.post("/api/channels/", {**VALID, **change}, format="json")

    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not Channel.objects.filter(channel_id=VALID["channel_id"]).exists()
    assert not Endpoint.objects.exists()


@pytest.mark.django_db
def test_duplicate_channel_id_is_400(staff_api, channel):
    response = staff_api.post("/api/channels/", {**VALID, "channel_id": channel.channel_id}, format="json")

    assert response.status_code == 400
    assert "channel_id" in response.json()


@pytest.mark.django_db
def test_whatsapp_business_number_is_stored_in_e164_digits(staff_api, tenant):
    payload = {**VALID, "channel_id": "channel-wa", "media_type": "whatsapp", "business_id": "+1 (925) 111-2222"}

    response = staff_api.post("/api/channels/", payload, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["business_id"] == "19251112222"


@pytest.mark.django_db
def test_update_keeps_the_secret_when_none_is_sent_and_replaces_endpoints(staff_api, channel):
    old_secret = channel.secret

    response = staff_api.patch(
        f"/api/channels/{channel.channel_id}/", {"name": "Renamed", "endpoints": ["1:other"]}, format="json"
    )

    assert response.status_code == 200, response.json()
    channel.refresh_from_db()
    assert channel.name == "Renamed"
    assert channel.secret == old_secret
    assert list(channel.endpoints.values_list("queue_key", flat=True)) == ["1:other"]


@pytest.mark.django_db
def test_invalid_update_changes_nothing(staff_api, channel):
    response = staff_api.patch(
        f"/api/channels/{channel.channel_id}/",
        {"name": "Renamed", "endpoints": ["1:fine", "42:unknown-tenant"]},
        format="json",
    )

    assert response.status_code == 400
    assert "endpoints" in response.json()
    channel.refresh_from_db()
    assert channel.name == "WhatsApp"
    assert list(channel.endpoints.values_list("queue_key", flat=True)) == ["1:session-chat"]


@pytest.mark.django_db
def test_list_filters_by_media_type_and_unknown_channel_is_404(staff_api, channel):
    assert staff_api.get("/api/channels/?media_type=whatsapp").json()["count"] == 1
    assert staff_api.get("/api/channels/?media_type=sms").json()["count"] == 0
    assert staff_api.get("/api/channels/nope/").status_code == 404


@pytest.mark.django_db
def test_delete_channel(staff_api, channel):
    assert staff_api.delete(f"/api/channels/{channel.channel_id}/").status_code == 204
    assert not Channel.objects.exists()


# --- rotating with a grace period (the old secret still verifies /nexus for a while) --------------------------


def nexus_post(channel_id: str, secret: str, message_id: str):
    import hashlib
    import hmac
    import json

    from django.test import Client

    body = json.dumps({"messages": [{"type": "Text", "text": "Hello", "channel": {
        "messageId": message_id, "from": {"id": "16504661149"}}}]}).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return Client().post(f"/nexus/v3/channels/{channel_id}/messages", body, content_type="application/json",
                         HTTP_X_HUB_SIGNATURE_256=signature)


@pytest.mark.django_db
def test_rotate_secret_with_a_grace_period_accepts_both_secrets_until_it_ends(staff_api, channel):
    from datetime import timedelta

    from django.utils import timezone

    from channels_app.selectors import channels_by_id

    old = channel.secret

    response = staff_api.post(f"/api/channels/{channel.channel_id}/rotate-secret/", {"grace_hours": 2},
                              format="json")

    assert response.status_code == 200, response.json()
    new = response.json()["secret"]
    until = response.json()["previous_secret_valid_until"]
    assert abs((timezone.datetime.fromisoformat(until) - timezone.now()) - timedelta(hours=2)) < timedelta(minutes=1)
    assert nexus_post(channel.channel_id, old, "m-old").status_code == 200
    assert nexus_post(channel.channel_id, new, "m-new").status_code == 200
    assert nexus_post(channel.channel_id, "guess", "m-guess").status_code == 401
    # when the grace has passed, the old secret is refused
    Channel.objects.filter(pk=channel.pk).update(previous_secret_until=timezone.now() - timedelta(seconds=1))
    channels_by_id.clear()  # the row as read a moment ago (an UPDATE sends no signal)
    assert nexus_post(channel.channel_id, old, "m-late").status_code == 401
    assert nexus_post(channel.channel_id, new, "m-new-2").status_code == 200
    assert old not in str(staff_api.get(f"/api/channels/{channel.channel_id}/").json())


@pytest.mark.django_db
def test_a_secret_set_by_hand_during_a_grace_period_ends_it(staff_api, channel):
    # given a rotation that keeps the old secret valid for 24 hours
    old = channel.secret
    staff_api.post(f"/api/channels/{channel.channel_id}/rotate-secret/", {"grace_hours": 24}, format="json")

    # when the administrator then sets a secret of its own (the old one leaked, say)
    chosen = "c" * 64
    assert staff_api.patch(f"/api/channels/{channel.channel_id}/", {"secret": chosen},
                           format="json").status_code == 200

    # then only that secret is accepted: neither the rotated one nor the one before it
    assert nexus_post(channel.channel_id, old, "m-old").status_code == 401
    assert nexus_post(channel.channel_id, chosen, "m-chosen").status_code == 200
    stored = Channel.objects.get(pk=channel.pk)
    assert (stored.previous_secret, stored.previous_secret_until) == ("", None)


@pytest.mark.django_db
def test_a_save_that_keeps_the_secret_keeps_the_grace_period(staff_api, channel):
    old = channel.secret
    staff_api.post(f"/api/channels/{channel.channel_id}/rotate-secret/", {"grace_hours": 2}, format="json")

    assert staff_api.patch(f"/api/channels/{channel.channel_id}/", {"name": "Renamed"},
                           format="json").status_code == 200

    assert nexus_post(channel.channel_id, old, "m-old").status_code == 200


@pytest.mark.django_db
def test_rotate_secret_without_a_grace_refuses_the_old_one_at_once(staff_api, channel):
    old = channel.secret

    response = staff_api.post(f"/api/channels/{channel.channel_id}/rotate-secret/")

    assert response.json()["previous_secret_valid_until"] is None
    assert nexus_post(channel.channel_id, old, "m-old").status_code == 401
    assert nexus_post(channel.channel_id, response.json()["secret"], "m-new").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("grace", [-1, 25, "soon", 1.5])
def test_rotate_secret_refuses_a_grace_outside_0_to_24_hours(staff_api, channel, grace):
    old = channel.secret

    response = staff_api.post(f"/api/channels/{channel.channel_id}/rotate-secret/", {"grace_hours": grace},
                              format="json")

    assert response.status_code == 400
    assert "grace_hours" in response.json()
    channel.refresh_from_db()
    assert channel.secret == old


# --- WhatsApp Cloud API channels: the verify token is generated, shown once, rotatable ---------------------------

CLOUD = {
    "channel_id": "channel-wa-cloud", "name": "Cloud", "media_type": "whatsapp", "transport": "whatsapp_cloud",
    "business_id": "15550783881", "phone_number_id": "106540352242922", "waba_id": "102290129340398",
    "access_token": "EAAG-token", "app_secret": "meta-app-secret", "tenant": 1,
}


def verify(channel_id: str, token: str):
    from django.test import Client

    return Client().get(f"/whatsapp/{channel_id}/webhook",
                        {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "42"})


@pytest.mark.django_db
def test_a_cloud_channel_gets_a_generated_verify_token_shown_once(staff_api, tenant):
    response = staff_api.post("/api/channels/", CLOUD, format="json")

    assert response.status_code == 201, response.json()
    token = response.json()["verify_token"]
    assert len(token) >= 32 and response.json()["has_verify_token"] is True
    assert verify("channel-wa-cloud", token).content == b"42"
    # the contract lists verify_token among the channel's readable fields (only the admin shows it once)
    assert staff_api.get("/api/channels/channel-wa-cloud/").json()["verify_token"] == token


@pytest.mark.django_db
def test_rotate_verify_token_replaces_it(staff_api, tenant):
    created = staff_api.post("/api/channels/", {**CLOUD, "verify_token": "typed-by-hand"}, format="json")
    assert created.json()["verify_token"] == "typed-by-hand"

    response = staff_api.post("/api/channels/channel-wa-cloud/rotate-verify-token/")

    assert response.status_code == 200
    token = response.json()["verify_token"]
    assert verify("channel-wa-cloud", token).status_code == 200
    assert verify("channel-wa-cloud", "typed-by-hand").status_code == 403


@pytest.mark.django_db
def test_rotate_verify_token_of_a_hub_channel_is_400_naming_the_transport(staff_api, channel):
    response = staff_api.post(f"/api/channels/{channel.channel_id}/rotate-verify-token/")

    assert response.status_code == 400
    assert "transport" in response.json()
