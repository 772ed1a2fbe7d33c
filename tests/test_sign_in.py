"""Signing in (API.md, "Sign-in"): single sign-on with OpenID Connect against a real provider on 127.0.0.1
(tests/identity_provider.py), and the second factor (TOTP, recovery codes) of the groups in REQUIRE_2FA_GROUPS.
The whole journey through headless Chromium is in tests/test_sign_in_browser.py."""

import logging
import time
from base64 import b32decode
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from channels_app.errors import PermissionDenied
from channels_app.models import AuditEntry, Membership, Tenant
from channels_app.services.roles import roles_ensure_default_groups
from channels_app.services.two_factor import second_factor_reset
from tests.conftest import member
from tests.identity_provider import TAMPERS, IdentityProvider

User = get_user_model()
# oidc-provider-mock still uses Authlib's older server interfaces
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
GROUP_MAP = {
    "dms-admins": {"groups": ["Administrator"], "tenants": [1]},
    "dms-agents": {"groups": ["WhatsApp agent"], "tenants": [1, 2]},
    "dms-ghosts": {"groups": ["No such group"], "tenants": [99]},
}


@pytest.fixture(scope="module")
def provider():
    with IdentityProvider() as running:
        yield running


@pytest.fixture
def sso(settings, provider, tenant):
    """Single sign-on configured against the suite's provider; tenants 1 and 2 and the default groups exist."""
    provider.tamper = None
    roles_ensure_default_groups()
    Tenant.objects.get_or_create(id=2, defaults={"name": "Tenant 2"})
    settings.OIDC_ISSUER = provider.url
    settings.OIDC_CLIENT_ID = "dms-test-client"
    settings.OIDC_CLIENT_SECRET = "dms-test-secret"
    settings.OIDC_PROVIDER_NAME = "Example ID"
    settings.OIDC_GROUP_MAP = GROUP_MAP
    return provider


@pytest.fixture
def two_factor(settings):
    settings.REQUIRE_2FA_GROUPS = ["Administrator"]


def sign_in_with_provider(client: Client, provider: IdentityProvider, sub: str, *, next_url: str = "/admin/"):
    """The browser's round trip: to the provider, signed in there as `sub`, back with the code."""
    start = client.get(f"/sign-in/oidc/?next={next_url}")
    assert start.status_code == 302, start.content[:300]
    authorize_url = start["Location"]
    assert authorize_url.startswith(f"{provider.url}/oauth2/authorize?")
    query = parse_qs(urlsplit(authorize_url).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    assert requests.get(authorize_url, timeout=10).status_code == 200  # the provider's form
    back = urlsplit(provider.authorize(authorize_url, sub))
    assert back.path == "/sign-in/oidc/callback/"
    return client.get(f"{back.path}?{back.query}")


def signed_in_as(client: Client):
    response = client.get("/admin/")
    if response.status_code != 200:
        return None
    return response.wsgi_request.user.get_username()


def errors_of(response) -> list[str]:
    return [str(message) for message in response.wsgi_request._messages]


# --- single sign-on ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_new_user_signs_in_with_the_provider_and_gets_the_groups_and_tenants_of_its_claim(sso, caplog):
    sso.set_user("ann", {"email": "ann@example.com", "given_name": "Ann", "groups": ["dms-agents", "dms-ghosts",
                                                                                   "not-mapped"]})
    client = Client()

    with caplog.at_level(logging.WARNING, logger="channels_app.services.single_sign_on"):
        answer = sign_in_with_provider(client, sso, "ann")

    assert answer.status_code == 302 and answer["Location"] == "/admin/"
    assert signed_in_as(client) == "ann@example.com"
    ann = User.objects.get(email="ann@example.com")
    assert ann.is_staff and not ann.is_superuser and not ann.has_usable_password() and ann.first_name == "Ann"
    assert sorted(ann.groups.values_list("name", flat=True)) == ["WhatsApp agent"]
    assert sorted(Membership.objects.filter(user=ann).values_list("tenant_id", flat=True)) == [1, 2]
    # the mapped group and tenant that do not exist are skipped with a warning, never created
    assert not Group.objects.filter(name="No such group").exists() and not Tenant.objects.filter(pk=99).exists()
    warnings = [record.getMessage() for record in caplog.records]
    assert any("'No such group'" in text for text in warnings) and any("tenant 99" in text for text in warnings)
    # the code went with its PKCE verifier
    assert sso.token_requests[-1]["code_verifier"]


@pytest.mark.django_db
def test_a_user_removed_from_a_provider_group_loses_its_group_and_tenants_at_the_next_sign_in(sso):
    sso.set_user("bob", {"email": "bob@example.com", "groups": ["dms-admins", "dms-agents"]})
    assert sign_in_with_provider(Client(), sso, "bob").status_code == 302
    bob = User.objects.get(email="bob@example.com")
    # an administrator gives bob a role the provider does not manage
    bob.groups.add(Group.objects.get(name="ESP client"))
    assert sorted(bob.groups.values_list("name", flat=True)) == ["Administrator", "ESP client", "WhatsApp agent"]

    sso.set_user("bob", {"email": "bob@example.com", "groups": ["dms-admins"]})
    client = Client()
    assert sign_in_with_provider(client, sso, "bob").status_code == 302

    assert signed_in_as(client) == "bob@example.com"
    assert sorted(bob.groups.values_list("name", flat=True)) == ["Administrator", "ESP client"]
    assert list(Membership.objects.filter(user=bob).values_list("tenant_id", flat=True)) == [1]
    assert User.objects.filter(email="bob@example.com").count() == 1


@pytest.mark.django_db
def test_an_existing_user_is_found_by_its_email(sso, tenant):
    carol = member("carol", "WhatsApp agent", tenants=[tenant])
    carol.email = "Carol@Example.com"
    carol.save()
    sso.set_user("carol-at-provider", {"email": "carol@example.com", "groups": ["dms-agents"]})
    client = Client()

    assert sign_in_with_provider(client, sso, "carol-at-provider").status_code == 302

    assert signed_in_as(client) == "carol"
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_an_unknown_user_whose_groups_give_no_role_is_refused_and_not_created(sso):
    sso.set_user("dave", {"email": "dave@example.com", "groups": ["dms-ghosts"]})
    client = Client()

    answer = sign_in_with_provider(client, sso, "dave")

    assert answer.status_code == 302 and answer["Location"] == "/admin/login/"
    assert "none was created" in " ".join(errors_of(answer))
    assert not User.objects.exists() and signed_in_as(client) is None


@pytest.mark.django_db
@pytest.mark.parametrize("tamper", TAMPERS)
def test_an_id_token_with_a_wrong_signature_audience_issuer_nonce_or_expiry_is_refused(sso, tamper):
    sso.set_user("eve", {"email": "eve@example.com", "groups": ["dms-admins"]})
    sso.tamper = tamper
    client = Client()

    answer = sign_in_with_provider(client, sso, "eve")

    assert answer.status_code == 302 and answer["Location"] == "/admin/login/"
    refusal = " ".join(errors_of(answer))
    assert "Sign-in with Example ID was refused" in refusal, refusal
    expected = {"signature": "signature", "audience": "aud", "issuer": "iss", "nonce": "nonce",
                "expired": "expired"}[tamper]
    assert expected in refusal.lower(), refusal
    assert not User.objects.exists() and not Membership.objects.exists() and signed_in_as(client) is None
    login_page = client.get("/admin/login/")
    assert "Sign in with Example ID" in login_page.content.decode()


@pytest.mark.django_db
def test_a_replayed_callback_is_refused(sso):
    sso.set_user("fay", {"email": "fay@example.com", "groups": ["dms-agents"]})
    client = Client()
    start = client.get("/sign-in/oidc/")
    back = urlsplit(sso.authorize(start["Location"], "fay"))
    assert client.get(f"{back.path}?{back.query}")["Location"] == "/admin/"
    other = Client()

    answer = other.get(f"{back.path}?{back.query}")  # the same code and state, in another browser

    assert answer["Location"] == "/admin/login/" and signed_in_as(other) is None


@pytest.mark.django_db
def test_the_login_page_offers_the_provider_only_when_configured(client, settings):
    assert "Sign in with" not in client.get("/admin/login/").content.decode()
    assert client.get("/sign-in/oidc/").status_code == 404

    settings.OIDC_ISSUER, settings.OIDC_CLIENT_ID, settings.OIDC_CLIENT_SECRET = "http://127.0.0.1:9", "a", "b"
    settings.OIDC_PROVIDER_NAME = "Contoso Login"

    page = client.get("/admin/login/?next=/admin/channels_app/channel/").content.decode()
    assert "Sign in with Contoso Login" in page
    assert ('href="/sign-in/oidc/?next=%2Fadmin%2Fchannels_app%2Fchannel%2F&amp;login=%2Fadmin%2Flogin%2F"'
            in page)


@pytest.mark.django_db
def test_oidc_only_turns_passwords_off_except_for_superusers(settings, tenant):
    settings.OIDC_ONLY = True
    member("agent", "WhatsApp agent", tenants=[tenant], password="agent-pass-123")
    User.objects.create_superuser("breakglass", password="break-glass-pass-123")

    agent = Client()
    refused = agent.post("/admin/login/", {"username": "agent", "password": "agent-pass-123"})
    token = Client().post("/api/auth/token/", {"username": "agent", "password": "agent-pass-123"},
                          content_type="application/json")
    superuser = Client()
    accepted = superuser.post("/admin/login/", {"username": "breakglass", "password": "break-glass-pass-123"})

    assert refused.status_code == 200 and signed_in_as(agent) is None
    assert token.status_code in (400, 401)
    assert accepted.status_code == 302 and signed_in_as(superuser) == "breakglass"


# --- the second factor ----------------------------------------------------------------------------------------


def code_of(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():06d}"


def enrol(client: Client, username: str, password: str) -> tuple[TOTPDevice, list[str]]:
    """A first sign-in of a user whose groups require a second factor: password, QR code, first code."""
    answer = client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"})
    assert answer.status_code == 302 and answer["Location"] == "/sign-in/enrol/"
    page = client.get("/sign-in/enrol/")
    assert page.status_code == 200 and 'src="data:image/svg+xml' in page.content.decode()
    device = TOTPDevice.objects.get(user__username=username, confirmed=False)
    secret = page.context["secret"].replace(" ", "")
    assert b32decode(secret + "=" * (-len(secret) % 8)) == device.bin_key
    done = client.post("/sign-in/enrol/", {"code": code_of(device)})
    assert done.status_code == 200, done.content[:500]
    return device, done.context["codes"]


@pytest.mark.django_db
def test_an_administrator_enrols_at_its_first_sign_in_and_is_not_signed_in_before(client, staff_user, two_factor,
                                                                                   settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # django-otp's own delay after a wrong code (1 s, 2 s, ...): not waited
    answer = client.post("/admin/login/", {"username": "operator", "password": "operator-pass-123"})

    assert answer["Location"] == "/sign-in/enrol/"
    # half signed in is not signed in: no admin page, no API call, no media file
    assert signed_in_as(client) is None
    assert client.get("/api/channels/").status_code in (401, 403)
    page = client.get("/sign-in/enrol/").content.decode()
    assert "Scan this QR code" in page and "operator" in page
    device = TOTPDevice.objects.get(user=staff_user)

    wrong = client.post("/sign-in/enrol/", {"code": "000000" if code_of(device) != "000000" else "111111"})
    assert wrong.status_code == 200 and "not right" in wrong.content.decode() and signed_in_as(client) is None
    done = client.post("/sign-in/enrol/", {"code": code_of(device)})

    assert done.status_code == 200 and len(done.context["codes"]) == 10
    assert done.context["next_url"] == "/admin/"
    assert signed_in_as(client) == "operator"
    assert client.get("/admin/").wsgi_request.user.is_verified()
    assert TOTPDevice.objects.get(user=staff_user).confirmed
    assert StaticDevice.objects.get(user=staff_user).token_set.count() == 10


@pytest.mark.django_db
def test_every_later_sign_in_asks_for_the_code_and_a_recovery_code_works_once(staff_user, two_factor):
    device, codes = enrol(Client(), "operator", "operator-pass-123")

    client = Client()
    answer = client.post("/admin/login/", {"username": "operator", "password": "operator-pass-123",
                                           "next": "/admin/channels_app/channel/"})
    assert answer["Location"] == "/sign-in/code/" and signed_in_as(client) is None
    assert "authenticator app" in client.get("/sign-in/code/").content.decode()
    done = client.post("/sign-in/code/", {"code": code_of(device, steps_ahead=1)})
    assert done.status_code == 302 and done["Location"] == "/admin/channels_app/channel/"
    assert signed_in_as(client) == "operator"

    recovered, again = Client(), Client()
    for browser in (recovered, again):
        browser.post("/admin/login/", {"username": "operator", "password": "operator-pass-123"})
    assert recovered.post("/sign-in/code/", {"code": codes[0].upper()})["Location"] == "/admin/"
    reused = again.post("/sign-in/code/", {"code": codes[0]})
    assert reused.status_code == 200 and signed_in_as(again) is None
    assert StaticDevice.objects.get(user=staff_user).token_set.count() == 9


@pytest.mark.django_db
def test_wrong_codes_are_failed_logins_for_the_throttle(staff_user, two_factor, settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # the device's own hold is the next test's
    device, _ = enrol(Client(), "operator", "operator-pass-123")
    right = code_of(device, steps_ahead=1)
    wrong = "123456" if right != "123456" else "654321"
    client = Client()
    client.post("/admin/login/", {"username": "operator", "password": "wrong-password"})  # failure 1
    assert client.post("/admin/login/", {"username": "operator", "password": "operator-pass-123"}).status_code == 302

    statuses = [client.post("/sign-in/code/", {"code": wrong}).status_code for _ in range(2)]  # failures 2, 3
    refused = client.post("/sign-in/code/", {"code": right})

    assert statuses == [200, 429]
    assert refused.status_code == 429 and signed_in_as(client) is None
    assert Client().post("/admin/login/", {"username": "operator", "password": "operator-pass-123"}).status_code \
        == 429


@pytest.mark.django_db
def test_after_a_wrong_code_the_authenticator_is_held_back_and_the_page_says_for_how_long(staff_user, two_factor):
    device, codes = enrol(Client(), "operator", "operator-pass-123")
    right = code_of(device, steps_ahead=1)
    client = Client()
    client.post("/admin/login/", {"username": "operator", "password": "operator-pass-123"})

    client.post("/sign-in/code/", {"code": "123456" if right != "123456" else "654321"})
    held = client.post("/sign-in/code/", {"code": right})

    assert held.status_code == 200 and "wait 1 second" in held.content.decode() and signed_in_as(client) is None
    # a recovery code is not held back with the authenticator
    assert client.post("/sign-in/code/", {"code": codes[1]})["Location"] == "/admin/"


@pytest.mark.django_db
def test_a_pending_sign_in_ends_after_ten_minutes(client, staff_user, two_factor):
    client.post("/admin/login/", {"username": "operator", "password": "operator-pass-123"})
    session = client.session
    session["sign_in_pending"]["at"] -= 601
    session.save()

    answer = client.get("/sign-in/enrol/")

    assert answer["Location"] == "/admin/login/" and "took too long" in " ".join(errors_of(answer))


@pytest.mark.django_db
def test_only_the_groups_of_require_2fa_groups_give_a_code(client, tenant, two_factor):
    member("agent", "WhatsApp agent", tenants=[tenant], password="agent-pass-123")

    answer = client.post("/admin/login/", {"username": "agent", "password": "agent-pass-123"})

    assert answer["Location"] == "/admin/" and signed_in_as(client) == "agent"
    assert not TOTPDevice.objects.exists()


@pytest.mark.django_db
def test_api_tokens_are_unaffected(staff_user, two_factor):
    enrol(Client(), "operator", "operator-pass-123")

    answer = Client().post("/api/auth/token/", {"username": "operator", "password": "operator-pass-123"},
                           content_type="application/json")

    assert answer.status_code == 200, answer.content
    token = answer.json()["token"]
    assert Client().get("/api/channels/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200


@pytest.mark.django_db
def test_single_sign_on_asks_an_administrator_for_its_code_too(sso, two_factor):
    sso.set_user("gil", {"email": "gil@example.com", "groups": ["dms-admins"]})
    client = Client()

    answer = sign_in_with_provider(client, sso, "gil", next_url="/admin/auth/user/")

    assert answer["Location"] == "/sign-in/enrol/" and signed_in_as(client) is None
    client.get("/sign-in/enrol/")
    device = TOTPDevice.objects.get(user__email="gil@example.com")
    done = client.post("/sign-in/enrol/", {"code": code_of(device)})
    assert done.context["next_url"] == "/admin/auth/user/" and signed_in_as(client) == "gil@example.com"


@pytest.mark.django_db
def test_a_superuser_resets_a_users_devices_audited(staff_user, two_factor):
    enrol(Client(), "operator", "operator-pass-123")
    root = User.objects.create_superuser("root", password="root-pass-123")
    admin = Client()
    admin.force_login(root)

    with pytest.raises(PermissionDenied):
        second_factor_reset(user=root, reset_by=staff_user)
    answer = admin.post("/admin/auth/user/", {"action": "reset_two_factor", "_selected_action": [staff_user.pk]})

    assert answer.status_code == 302
    assert not TOTPDevice.objects.filter(user=staff_user).exists()
    assert not StaticDevice.objects.filter(user=staff_user).exists()
    entry = AuditEntry.objects.get(object_type="user", object_id=str(staff_user.pk), action="revoke")
    assert entry.username == "root" and entry.changes == {
        "two_factor_devices": [["Authenticator", "Recovery codes"], []]}
    # and the next sign-in enrols again
    again = Client().post("/admin/login/", {"username": "operator", "password": "operator-pass-123"})
    assert again["Location"] == "/sign-in/enrol/"


@pytest.mark.django_db
def test_an_administrator_who_is_not_a_superuser_is_not_offered_the_reset(client, staff_user):
    client.force_login(staff_user)

    page = client.get("/admin/auth/user/").content.decode()

    assert "reset_two_factor" not in page
    answer = client.post("/admin/auth/user/", {"action": "reset_two_factor", "_selected_action": [staff_user.pk]})
    assert answer.status_code in (200, 302) and AuditEntry.objects.filter(action="revoke").count() == 0


@pytest.mark.django_db
def test_a_code_without_a_pending_sign_in_goes_back_to_the_login(client):
    for path in ("/sign-in/code/", "/sign-in/enrol/"):
        answer = client.post(path, {"code": "123456"})
        assert answer.status_code == 302 and answer["Location"] == "/admin/login/"


@pytest.mark.django_db
def test_the_demo_admin_of_make_run_signs_in_with_its_printed_password(monkeypatch, two_factor, capsys):
    # the contract asks the groups of REQUIRE_2FA_GROUPS (default Administrator) for a code; the demo's admin is
    # a superuser outside them, so a new user signs in with what make run printed
    from django.core.management import call_command

    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    call_command("ensure_admin")
    password = capsys.readouterr().out.split("Admin login: admin / ")[1].split()[0]

    client = Client()
    response = client.post("/admin/login/", {"username": "admin", "password": password})

    assert response.status_code == 302 and signed_in_as(client) == "admin"


@pytest.mark.django_db
def test_superusers_enrol_at_their_first_sign_in_when_required(monkeypatch, two_factor, capsys, settings):
    from django.core.management import call_command

    settings.REQUIRE_2FA_SUPERUSERS = True
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    call_command("ensure_admin")
    printed = capsys.readouterr().out
    password = printed.split("Admin login: admin / ")[1].split()[0]
    assert "sets up an authenticator app" in printed

    client = Client()
    enrol(client, "admin", password)  # the password leads to the enrolment, not into the admin

    assert signed_in_as(client) == "admin"
