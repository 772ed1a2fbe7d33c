"""Tokens that end (API.md, "Tokens end"): revocation, TOKEN_TTL, a new password, the login throttle."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from channels_app.models import AuditEntry

PASSWORD = "operator-pass-123"


def _token_for(api: APIClient, username="operator", password=PASSWORD, **extra) -> str:
    response = api.post("/api/auth/token/", {"username": username, "password": password}, **extra)
    assert response.status_code == 200, response.content
    return response.json()["token"]


def _with_token(key: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api


# --- revocation ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_delete_revokes_the_callers_token(anonymous_api, staff_user):
    # given
    api = _with_token(_token_for(anonymous_api))
    assert api.get("/api/tenants/").status_code == 200

    # when
    response = api.delete("/api/auth/token/")

    # then
    assert response.status_code == 204
    assert api.get("/api/tenants/").status_code == 401
    assert not Token.objects.filter(user=staff_user).exists()
    assert api.post("/esp", {}, format="json").status_code == 401


@pytest.mark.django_db
def test_delete_without_a_token_is_401(anonymous_api):
    response = anonymous_api.delete("/api/auth/token/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.django_db
def test_revoking_leaves_other_users_tokens(anonymous_api, staff_user, django_user_model):
    django_user_model.objects.create_user("other", password=PASSWORD)
    other = _with_token(_token_for(anonymous_api, "other"))

    _with_token(_token_for(anonymous_api)).delete("/api/auth/token/")

    assert other.get("/api/").status_code == 200  # still signed in (the API root needs no permission)


# --- TOKEN_TTL ----------------------------------------------------------------------------------------------------


def _age(key: str, age: timedelta) -> None:
    token = Token.objects.get(key=key)
    token.created = timezone.now() - age  # time travel
    token.save(update_fields=["created"])


@pytest.mark.django_db
def test_a_token_older_than_the_ttl_is_refused(anonymous_api, staff_user, settings):
    settings.TOKEN_TTL = timedelta(days=30)
    key = _token_for(anonymous_api)
    api = _with_token(key)

    _age(key, timedelta(days=29, hours=23))
    assert api.get("/api/tenants/").status_code == 200

    _age(key, timedelta(days=30, seconds=1))
    response = api.get("/api/tenants/")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    assert api.post("/esp", {}, format="json").status_code == 401


@pytest.mark.django_db
def test_posting_the_password_again_replaces_an_expired_token(anonymous_api, staff_user, settings):
    # given an expired token, still sent along by the client
    settings.TOKEN_TTL = timedelta(hours=1)
    old = _token_for(anonymous_api)
    _age(old, timedelta(hours=2))

    # when
    new = _token_for(_with_token(old))

    # then
    assert new != old
    assert _with_token(new).get("/api/tenants/").status_code == 200
    assert _with_token(old).get("/api/tenants/").status_code == 401


@pytest.mark.django_db
def test_posting_the_password_again_keeps_a_live_token(anonymous_api, staff_user):
    assert _token_for(anonymous_api) == _token_for(anonymous_api)


@pytest.mark.django_db
def test_checking_a_token_again_is_no_query_until_it_is_revoked(anonymous_api, staff_user, django_assert_num_queries):
    from rest_framework.exceptions import AuthenticationFailed

    from channels_app.authentication import ExpiringTokenAuthentication

    key = _token_for(anonymous_api)
    request = _with_token(key).get("/api/emojis/").wsgi_request  # the first request reads token, rights, tenants

    with django_assert_num_queries(0):
        user, _ = ExpiringTokenAuthentication().authenticate(request)
    assert user == staff_user

    Token.objects.filter(key=key).delete()  # revoked (in this process: at once; elsewhere within AUTH_CACHE_SECONDS)
    with pytest.raises(AuthenticationFailed):
        ExpiringTokenAuthentication().authenticate(request)


@pytest.mark.django_db
def test_a_group_taken_away_takes_effect_on_the_next_request(anonymous_api, staff_user):
    from django.contrib.auth.models import Group

    api = _with_token(_token_for(anonymous_api))
    assert api.get("/api/channels/").status_code == 200

    staff_user.groups.remove(*Group.objects.all())

    assert api.get("/api/channels/").status_code == 403


def test_token_ttl_takes_seconds_or_a_unit():
    from project.settings import duration

    assert duration("2592000") == timedelta(days=30)
    assert duration("30d") == duration("720h") == timedelta(days=30)
    assert duration("45m") == timedelta(minutes=45)
    assert duration("2w") == timedelta(days=14)
    with pytest.raises(Exception, match="Not a duration"):
        duration("thirty days")


# --- a new password revokes ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_set_password_and_save_revokes_the_users_tokens(anonymous_api, staff_user):
    api = _with_token(_token_for(anonymous_api))

    staff_user.set_password("a-new-pass-456")
    staff_user.save()

    assert api.get("/api/tenants/").status_code == 401
    entry = AuditEntry.objects.get(object_type="token", action="revoke")
    assert entry.object_id == str(staff_user.pk) and entry.changes == {"reason": [None, "password changed"]}
    assert _token_for(anonymous_api, password="a-new-pass-456")


@pytest.mark.django_db
def test_saving_a_user_without_a_new_password_keeps_the_tokens(anonymous_api, staff_user):
    api = _with_token(_token_for(anonymous_api))

    staff_user.first_name = "Olga"
    staff_user.save()
    staff_user.refresh_from_db()
    staff_user.save(update_fields=["last_login"])

    assert api.get("/api/tenants/").status_code == 200


@pytest.mark.django_db
def test_the_admin_password_form_revokes_the_users_tokens(anonymous_api, staff_user, django_user_model):
    # given an administrator in the admin, and the operator's token
    django_user_model.objects.create_superuser("admin", password="admin-pass-123")
    api = _with_token(_token_for(anonymous_api))
    browser = Client()
    assert browser.post("/admin/login/", {"username": "admin", "password": "admin-pass-123"}).status_code == 302

    # when the administrator sets the operator's password in the admin
    response = browser.post(f"/admin/auth/user/{staff_user.pk}/password/", {
        "password1": "brand-new-pass-789", "password2": "brand-new-pass-789", "usable_password": "true",
    })

    # then
    assert response.status_code == 302, response.content[:2000]
    assert api.get("/api/tenants/").status_code == 401
    entry = AuditEntry.objects.get(object_type="token", action="revoke")
    assert entry.username == "admin" and entry.remote_addr == "127.0.0.1"


@pytest.mark.django_db
def test_changepassword_command_revokes_the_users_tokens(anonymous_api, staff_user, monkeypatch):
    api = _with_token(_token_for(anonymous_api))
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "cmd-new-pass-321")

    call_command("changepassword", "operator", stdout=None)

    assert api.get("/api/tenants/").status_code == 401
    assert AuditEntry.objects.get(object_type="token").username == "system"


# --- the login throttle (django-axes) --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_login_locks_out_one_address_after_the_limit(staff_user, settings):
    # given a limit of 3 failures
    settings.AXES_FAILURE_LIMIT = 3
    attacker, neighbour = Client(REMOTE_ADDR="198.51.100.7"), Client(REMOTE_ADDR="198.51.100.8")
    wrong = {"username": "operator", "password": "wrong"}

    # when the attacker fails three times
    statuses = [attacker.post("/admin/login/", wrong).status_code for _ in range(3)]

    # then the third failure locks that address out, even with the right password
    assert statuses == [200, 200, 429]
    refused = attacker.post("/admin/login/", {"username": "operator", "password": PASSWORD})
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    # while another address still logs in
    assert neighbour.post("/admin/login/", {"username": "operator", "password": PASSWORD}).status_code == 302


@pytest.mark.django_db
def test_a_claimed_forwarded_address_does_not_escape_the_admin_lockout(staff_user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    attacker = Client(REMOTE_ADDR="198.51.100.7")

    statuses = [attacker.post("/admin/login/", {"username": "operator", "password": "wrong"},
                              HTTP_X_FORWARDED_FOR=f"192.0.2.{n}").status_code for n in range(4)]

    assert statuses == [200, 200, 429, 429]


@pytest.mark.django_db
def test_a_successful_login_clears_the_failures(staff_user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    browser = Client(REMOTE_ADDR="198.51.100.9")

    for _ in range(5):
        assert browser.post("/admin/login/", {"username": "operator", "password": "wrong"}).status_code == 200
        assert browser.post("/admin/login/", {"username": "operator", "password": PASSWORD}).status_code == 302
        browser.post("/admin/logout/")


@pytest.mark.django_db
def test_the_token_endpoint_answers_429_when_the_address_is_locked_out(staff_user, settings):
    # given an address locked out by failures at the admin's login
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        Client(REMOTE_ADDR="198.51.100.7").post("/admin/login/", {"username": "operator", "password": "wrong"})
    api = APIClient(REMOTE_ADDR="198.51.100.7")

    # when it asks for a token with the right password
    response = api.post("/api/auth/token/", {"username": "operator", "password": PASSWORD})

    # then
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "Too many failed logins" in response.json()["detail"]
    assert _token_for(APIClient(REMOTE_ADDR="198.51.100.8"))  # another address is not affected


@pytest.mark.django_db
def test_failed_token_requests_count_towards_the_lockout(staff_user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    api = APIClient(REMOTE_ADDR="198.51.100.7")

    statuses = [api.post("/api/auth/token/", {"username": "operator", "password": "wrong"}).status_code
                for _ in range(3)]
    statuses.append(api.post("/api/auth/token/", {"username": "operator", "password": PASSWORD}).status_code)

    assert statuses == [401, 401, 429, 429]
