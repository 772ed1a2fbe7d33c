import pytest
from rest_framework.throttling import ScopedRateThrottle


@pytest.mark.django_db
def test_token_is_issued_for_valid_credentials(anonymous_api, staff_user):
    response = anonymous_api.post("/api/auth/token/", {"username": "operator", "password": "operator-pass-123"})

    assert response.status_code == 200
    token = response.json()["token"]
    anonymous_api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert anonymous_api.get("/api/tenants/").status_code == 200


@pytest.mark.django_db
def test_wrong_password_is_401(anonymous_api, staff_user):
    response = anonymous_api.post("/api/auth/token/", {"username": "operator", "password": "nope"})

    assert response.status_code == 401


@pytest.mark.django_db
def test_missing_password_is_400_naming_the_field(anonymous_api):
    response = anonymous_api.post("/api/auth/token/", {"username": "operator"}, format="json")

    assert response.status_code == 400
    assert "password" in response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/tenants/", "/api/channels/", "/api/options/", "/api/business-attributes/"])
def test_endpoints_need_a_token(anonymous_api, path):
    assert anonymous_api.get(path).status_code == 401


@pytest.mark.django_db
def test_a_wrong_token_is_401(anonymous_api):
    anonymous_api.credentials(HTTP_AUTHORIZATION="Token not-a-token")

    assert anonymous_api.get("/api/tenants/").status_code == 401


@pytest.mark.django_db
def test_non_staff_may_read_but_not_write_configuration(agent_api, tenant):
    assert agent_api.get("/api/channels/").status_code == 200
    assert agent_api.post("/api/tenants/", {"id": 7, "name": "x"}).status_code == 403
    assert agent_api.patch(
        "/api/options/dms/session-shutdown-timeout/", {"value": 900}, format="json"
    ).status_code == 403


@pytest.mark.django_db
def test_token_endpoint_is_rate_limited(anonymous_api, monkeypatch):
    # given a limit of 3 attempts a minute (the default is TOKEN_THROTTLE_RATE, 20/min)
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"token": "3/min"})

    # when
    statuses = [
        anonymous_api.post("/api/auth/token/", {"username": "x", "password": "y"}).status_code for _ in range(4)
    ]

    # then
    assert statuses == [401, 401, 401, 429]


@pytest.mark.django_db
def test_a_client_cannot_escape_the_token_rate_limit_by_claiming_other_addresses(anonymous_api, monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"token": "3/min"})

    statuses = [
        anonymous_api.post("/api/auth/token/", {"username": "x", "password": "y"},
                           HTTP_X_FORWARDED_FOR=f"192.0.2.{attempt}").status_code
        for attempt in range(4)
    ]

    assert statuses == [401, 401, 401, 429]  # every attempt claimed a new address: it was never throttled
