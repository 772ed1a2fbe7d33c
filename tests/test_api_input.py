"""What the REST API refuses rather than quietly taking (found by bench/fuzz.py, schemathesis' negative cases):
form-encoded bodies, JSON values of the wrong type, filters and pages it cannot read, a changed id, deleting
what is still in use; and URLs that match no route answer JSON."""

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from channels_app.models import BusinessAttribute, Channel, Tenant
from tests.factories import InteractionFactory
from tests.test_sessions import make_interaction


@pytest.mark.django_db
def test_a_form_encoded_body_is_415_not_a_silently_emptied_list(staff_api):
    # a form cannot carry the list of value objects: it was taken as "no values" and the attribute created
    response = staff_api.post("/api/business-attributes/", {
        "name": "Fruit", "display_name": "Fruit", "type": "contact_attributes", "values": '[{"display_name": "x"}]',
    }, format="multipart")

    assert response.status_code == 415
    assert not BusinessAttribute.objects.filter(name="Fruit").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "fields"),
    [
        pytest.param({"id": "7", "name": "Seven"}, {"id"}, id="a-string-for-an-integer"),
        pytest.param({"id": 7, "name": 7}, {"name"}, id="a-number-for-a-string"),
        pytest.param({"id": True, "name": "Seven"}, {"id"}, id="a-boolean-for-an-integer"),
        pytest.param({"id": 7.0, "name": ["Seven"]}, {"id", "name"}, id="both"),
        pytest.param({"id": 7, "name": " " + "x" * 200}, {"name"}, id="too-long-before-trimming"),
    ],
)
def test_json_values_of_the_wrong_type_are_400_naming_the_field(staff_api, body, fields):
    response = staff_api.post("/api/tenants/", body)

    assert response.status_code == 400
    assert set(response.json()) == fields
    assert not Tenant.objects.filter(id=7).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"enabled": "false"}, "enabled", id="a-string-for-a-boolean"),
        pytest.param({"retry_attempts": "3"}, "retry_attempts", id="a-string-for-an-integer"),
        pytest.param({"tenant": "1"}, "tenant", id="a-string-for-an-id"),
        pytest.param({"endpoints": ["1:session-chat", 7]}, "endpoints", id="a-number-in-a-list-of-strings"),
    ],
)
def test_channel_updates_are_type_checked_too(staff_api, channel, change, field):
    response = staff_api.patch(f"/api/channels/{channel.channel_id}/", change)

    assert response.status_code == 400
    assert field in response.json()
    assert Channel.objects.get(pk=channel.pk).enabled


@pytest.mark.django_db
def test_well_typed_json_still_works(staff_api, channel):
    response = staff_api.patch(f"/api/channels/{channel.channel_id}/", {"enabled": False, "retry_attempts": 3})

    assert response.status_code == 200, response.json()
    assert response.json()["enabled"] is False


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        pytest.param("/api/channels/?enabled=maybe", "enabled", id="not-a-boolean"),
        pytest.param("/api/channels/?enabled=", "enabled", id="an-empty-boolean"),
        pytest.param("/api/interactions/?created_before=", "created_before", id="an-empty-date"),
        pytest.param("/api/interactions/?state=", "state", id="an-empty-choice"),
        pytest.param("/api/standard-responses/?category=0.5", "category", id="not-an-integer"),
        pytest.param("/api/interactions/?created_after=0001-01-01T00:00:00%2B19:44", "created_after",
                     id="a-time-before-year-1-in-utc"),
    ],
)
def test_a_filter_it_cannot_read_is_400_naming_it_not_ignored(staff_api, channel, query, parameter):
    response = staff_api.get(query)

    assert response.status_code == 400
    assert parameter in response.json()


@pytest.mark.django_db
def test_a_time_filter_with_an_offset_postgresql_does_not_take_is_compared_in_utc(staff_api, channel):
    # given interactions a minute either side of 20:00 at +19:44 (00:16 UTC), and one at 20:00 UTC
    names = {}
    for name, client_id, hour, minute in [("before", "15550000001", 0, 15), ("after", "15550000002", 0, 17),
                                          ("naive reading", "15550000003", 20, 0)]:
        created = InteractionFactory(channel=channel, client_id=client_id, now=datetime(2026, 1, 1, hour, minute,
                                                                                          tzinfo=UTC))
        names[created.pk] = name

    def listed(query: str) -> set[str]:
        response = staff_api.get(f"/api/interactions/?{query}=2026-01-01T20:00:00%2B19:44")  # was a 500
        assert response.status_code == 200, response.json()
        return {names[row["id"]] for row in response.json()["results"]}

    # then the bound is the instant 00:16 UTC, on either side
    assert listed("created_before") == {"before"}
    assert listed("created_after") == {"after", "naive reading"}


@pytest.mark.django_db
def test_an_empty_page_number_is_404_like_any_wrong_page_and_an_empty_search_is_fine(staff_api, channel):
    assert staff_api.get("/api/channels/?page=").status_code == 404
    assert staff_api.get("/api/channels/?page=1").status_code == 200
    assert staff_api.get("/api/standard-responses/?search=").status_code == 200


@pytest.mark.django_db
def test_an_update_may_repeat_the_chosen_id_but_not_change_it(staff_api, tenant):
    changed = staff_api.patch(f"/api/tenants/{tenant.id}/", {"id": 0, "name": "Renamed"})
    repeated = staff_api.patch(f"/api/tenants/{tenant.id}/", {"id": tenant.id, "name": "Renamed"})

    assert changed.status_code == 400 and "id" in changed.json()
    assert repeated.status_code == 200
    assert Tenant.objects.get(id=tenant.id).name == "Renamed"


@pytest.mark.django_db
def test_deleting_a_channel_with_interactions_is_400_and_keeps_it(staff_api, channel):
    make_interaction(channel, "15556667777")

    response = staff_api.delete(f"/api/channels/{channel.channel_id}/")  # was a 500 (ProtectedError)

    assert response.status_code == 400
    assert "interactions" in response.json()["channel_id"][0]
    assert Channel.objects.filter(pk=channel.pk).exists()


@pytest.mark.django_db
def test_deleting_a_standard_response_a_campaign_uses_is_400(staff_api, channel):
    staff_api.post("/api/standard-responses/", {"id": "Hello1", "name": "Hello", "content_type": "text", "body": "Hi"})
    staff_api.post("/api/campaigns/", {"name": "C", "channel": channel.channel_id, "standard_response": "Hello1"})

    response = staff_api.delete("/api/standard-responses/Hello1/")

    assert response.status_code == 400
    assert "campaigns" in response.json()["id"][0]


@pytest.mark.django_db
def test_urls_that_match_no_route_answer_json_for_programs_and_html_for_people(admin_client):
    api = APIClient()

    assert api.get("/api/interactions/%C2%84/").json() == {"detail": "Not found."}
    assert api.get("/api/nothing-here/").status_code == 404
    nexus = api.post("/nexus/v3/channels/a/b/messages", b"{}", content_type="application/json")
    assert (nexus.status_code, nexus.json()) == (404, {"status": {"code": 404, "message": "Not found."}})
    assert admin_client.get("/admin/nothing-here/").headers["Content-Type"].startswith("text/html")


DEEP_JSON = b"[" * 50_000 + b"]" * 50_000  # within the ESP's 100000-byte limit; deeper than json decodes


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/auth/token/", "/api/channels/", "/esp",
                                  "/nexus/v3/channels/channel-whatsapp-REAL/messages"])
def test_json_nested_too_deeply_is_400_not_a_500(staff_api, webhook_channel, path):
    signature = "sha256=" + hmac.new(b"channel-secret", DEEP_JSON, hashlib.sha256).hexdigest()

    response = staff_api.generic("POST", path, DEEP_JSON, content_type="application/json",
                                 HTTP_X_HUB_SIGNATURE_256=signature)

    assert response.status_code == 400, response.content[:300]  # was a 500 (RecursionError)


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/emojis/?channel=a%00b", "/api/options/?channel=%00",
                                 "/api/channels/a%00b/", "/nexus/v3/channels/a%00b/messages"])
def test_a_nul_character_in_the_url_is_400_not_a_500(staff_api, channel, url):
    response = staff_api.get(url) if "nexus" not in url else staff_api.post(url, {})

    assert response.status_code == 400  # was a 500: PostgreSQL cannot compare text holding NUL


@pytest.mark.django_db
def test_a_nul_character_in_a_json_body_is_400_naming_where_it_is(staff_api, webhook_channel):
    api = staff_api.post("/api/campaigns/", {"name": "C", "channel": "channel\x00", "standard_response": "x"})
    esp = staff_api.post("/esp", {"AppName": "DMS", "Service": "ChatService", "Method": "InviteToChat",
                                  "Parameters": {}, "UserData": {"Note": "a\x00b"}})
    body = json.dumps({"messages": [{"type": "Text", "text": "hi\x00"}]}).encode()
    signature = "sha256=" + hmac.new(b"channel-secret", body, hashlib.sha256).hexdigest()
    nexus = staff_api.generic("POST", f"/nexus/v3/channels/{webhook_channel.channel_id}/messages", body,
                              content_type="application/json", HTTP_X_HUB_SIGNATURE_256=signature)

    assert (api.status_code, list(api.json())) == (400, ["channel"])
    assert esp.status_code == 400 and "UserData.Note" in esp.json()["Error"]["Message"]
    assert nexus.status_code == 400 and "messages[0].text" in nexus.json()["status"]["message"]


@pytest.mark.django_db
def test_a_nul_character_in_a_form_field_is_400_naming_it(staff_api, channel):
    response = staff_api.post("/api/campaigns/", {"name": "C", "channel": "channel\x00", "standard_response": "x"},
                              format="multipart")

    assert (response.status_code, list(response.json())) == (400, ["channel"])  # was a 500


HUGE = "99999999999999999999"  # beyond 64 bits: SQLite cannot take it as an integer (that was a 500)


@pytest.mark.django_db
@pytest.mark.parametrize(("url", "parameter"), [
    pytest.param("/api/standard-responses/", "category", id="standard-responses-category"),
    pytest.param("/api/users/", "tenant", id="users-tenant"),
])
@pytest.mark.parametrize("value", [HUGE, "-" + HUGE])
def test_a_huge_integer_in_a_filter_is_400_naming_it(staff_api, channel, url, parameter, value):
    response = staff_api.get(url, {parameter: value})

    assert response.status_code == 400, response.content[:300]
    assert parameter in response.json()


@pytest.mark.django_db
def test_a_huge_number_as_the_audit_logs_user_is_a_username(staff_api, channel):
    response = staff_api.get("/api/audit-log/", {"user": HUGE})

    assert response.status_code == 200, response.content[:300]
    assert response.json()["results"] == []


def _list_filters():
    from channels_app.api.urls import router

    for prefix, viewset, _basename in router.registry:
        filterset = getattr(viewset, "filterset_class", None)
        names = set(getattr(viewset, "filterset_fields", None) or ()) | set(getattr(filterset, "base_filters", ()))
        for name in sorted(names | {"id", "page"}):
            yield f"/api/{prefix}/", name


@pytest.mark.django_db
def test_no_filter_of_any_list_answers_a_huge_integer_with_a_500(staff_api, channel):
    for url, name in _list_filters():
        response = staff_api.get(url, {name: HUGE})

        assert response.status_code in (200, 400, 404), (url, name, response.status_code)
