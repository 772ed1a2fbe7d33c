import io
import json
from pathlib import Path

import pytest

from channels_app.models import StandardResponse
from tests.factories import StandardResponseCategoryFactory

FIXTURES = Path(__file__).parent / "fixtures"
SPEC_RESPONSE = json.loads((FIXTURES / "invite_to_chat_standard_response.json").read_text())
SPEC_REQUEST = json.loads((FIXTURES / "invite_to_chat_request.json").read_text())
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def spec_response(staff_api):
    response = staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.mark.django_db
def test_the_spec_example_renders_as_the_customer_would_read_it(staff_api, spec_response):
    params = SPEC_REQUEST["Parameters"]

    response = staff_api.post(
        "/api/standard-responses/000G9aF2PQ3A000K/render/",
        {"fields": {"Contact": params["Contact"], "CustomProperties": params["CustomProperties"]}},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert body["missing"] == []
    assert body["payload"]["type"] == "Notification"
    assert body["payload"]["text"] == (
        "Dear John Smith, your bill of $129.99 is due on March 5 / 2020. "
        "Our agent will call you on March 7 / 2020 at 3:00 PM."
    )
    assert body["payload"]["template"]["name"] == "bill_reminder"
    assert body["payload"]["template"]["parameters"][0] == "John Smith"


@pytest.mark.django_db
def test_missing_field_values_are_reported_by_name(staff_api, spec_response):
    response = staff_api.post(
        "/api/standard-responses/000G9aF2PQ3A000K/render/", {"fields": {"Contact": {"FirstName": "Jo"}}}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["missing"] == [
        "Contact.LastName", "Contact.MyFC_BillAmount", "Contact.MyFC_Date",
        "CustomProperties.CustomProp_Date", "CustomProperties.CustomProp Time",
    ]


@pytest.mark.django_db
def test_agents_may_render_but_not_write(agent_api, spec_response):
    assert agent_api.post("/api/standard-responses/000G9aF2PQ3A000K/render/", {}, format="json").status_code == 200
    assert agent_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 403


@pytest.mark.django_db
def test_render_refuses_a_tab_in_a_header_parameter(staff_api):
    created = staff_api.post(
        "/api/standard-responses/",
        {
            "name": "Rich", "content_type": "rich_media", "body": "Hello {{1}}",
            "structured": {
                "template": {"name": "promo"}, "parameters": {"1": "<$Contact.FirstName$>"},
                "header": {"type": "text", "text": "Offer for <$Contact.FirstName$>"},
                "buttons": [{"type": "quick_reply", "text": "Yes"}],
            },
        },
        format="json",
    )
    assert created.status_code == 201, created.json()

    response = staff_api.post(
        f"/api/standard-responses/{created.json()['id']}/render/",
        {"fields": {"Contact": {"FirstName": "Jo\thn"}}},
        format="json",
    )

    assert response.status_code == 400
    assert "structured.header.text" in response.json()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content_type", "body", "structured", "field"),
    [
        ("rich_media", "b", {"template": {"name": "t"}, "header": {"type": "text", "text": "h" * 61}},
         "structured.header.text"),
        ("rich_media", "b" * 1025, {"template": {"name": "t"}}, "body"),
        ("rich_media", "b", {"template": {"name": "t"}, "footer": "f" * 61}, "structured.footer"),
        ("rich_media", "b", {"template": {"name": "t"}, "buttons": [{"type": "quick_reply", "text": "q"}] * 4},
         "structured.buttons"),
        ("reply_buttons", "b", {"buttons": [{"id": f"{i}", "title": "t"} for i in range(4)]}, "structured.buttons"),
        ("reply_buttons", "b", {"buttons": [{"id": "1", "title": "t" * 21}]}, "structured.buttons[0].title"),
        ("reply_buttons", "b", {"buttons": [{"id": "1", "title": "a     b"}]}, "structured.buttons[0].title"),
        ("list", "b", {"button": "Menu", "sections": [{"rows": [{"id": f"{i}", "title": "r"} for i in range(11)]}]},
         "structured.sections"),
        ("text", "Hi <$Contact.FirstName", {}, "body"),
        ("notification", "Hi {{2}}", {"template": {"name": "t"}, "parameters": {"1": "x"}}, "body"),
        ("nope", "b", {}, "content_type"),
    ],
)
def test_limits_are_400_naming_the_field(staff_api, content_type, body, structured, field):
    payload = {"name": "x", "content_type": content_type, "body": body, "structured": structured}

    response = staff_api.post("/api/standard-responses/", payload, format="json")

    assert response.status_code == 400
    errors = response.json()
    assert any(key == field or key.startswith(field) for key in errors), errors
    assert not StandardResponse.objects.exists()


@pytest.mark.django_db
def test_malformed_field_code_names_its_position(staff_api):
    response = staff_api.post(
        "/api/standard-responses/", {"name": "x", "content_type": "text", "body": "Hi <$Nobody.Name$>"}, format="json"
    )

    assert response.status_code == 400
    assert "position 3" in response.json()["body"][0]


@pytest.mark.django_db
def test_filters_by_category_content_type_language_and_search(staff_api, spec_response, tenant):
    root = StandardResponseCategoryFactory(tenant=tenant, name="Billing")
    child = StandardResponseCategoryFactory(tenant=tenant, name="Reminders", parent=root)
    staff_api.post(
        "/api/standard-responses/",
        {"name": "Welcome", "content_type": "text", "body": "Bonjour", "language": "fr", "category": child.pk},
        format="json",
    )

    def names(query):
        return [r["name"] for r in staff_api.get(f"/api/standard-responses/?{query}").json()["results"]]

    assert names(f"category={root.pk}") == ["Welcome"]
    assert names("content_type=notification") == ["Bill reminder"]
    assert names("language=fr") == ["Welcome"]
    assert names("search=bonjour") == ["Welcome"]


@pytest.mark.django_db
def test_update_and_delete(staff_api, spec_response):
    url = "/api/standard-responses/000G9aF2PQ3A000K/"

    assert staff_api.patch(url, {"name": "Renamed"}, format="json").json()["name"] == "Renamed"
    assert staff_api.patch(url, {"body": "{{9}}"}, format="json").status_code == 400
    assert staff_api.delete(url).status_code == 204
    assert staff_api.post(f"{url}render/", {}, format="json").status_code == 404


@pytest.mark.django_db
def test_duplicate_id_is_400(staff_api, spec_response):
    response = staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json")

    assert response.status_code == 400
    assert "id" in response.json()


@pytest.mark.django_db
def test_attachment_upload_is_checked_by_content(staff_api):
    good = io.BytesIO(PNG)
    good.name = "logo.png"
    fake = io.BytesIO(b"MZ\x90\x00 not an image")
    fake.name = "logo.png"

    accepted = staff_api.post("/api/attachments/", {"file": good}, format="multipart")
    refused = staff_api.post("/api/attachments/", {"file": fake}, format="multipart")

    assert accepted.status_code == 201, accepted.json()
    assert accepted.json()["mime_type"] == "image/png"
    assert refused.status_code == 400
    assert "file" in refused.json()


@pytest.mark.django_db
def test_header_attachment_must_exist_and_is_rendered(staff_api):
    upload = io.BytesIO(PNG)
    upload.name = "banner.png"
    attachment_id = staff_api.post("/api/attachments/", {"file": upload}, format="multipart").json()["id"]
    base = {"name": "Img", "content_type": "reply_buttons", "body": "Pick one",
            "structured": {"buttons": [{"id": "a", "title": "A"}]}}

    unknown = staff_api.post(
        "/api/standard-responses/",
        {**base, "structured": {**base["structured"], "header": {"type": "image", "attachment": 999999}}},
        format="json",
    )
    created = staff_api.post(
        "/api/standard-responses/",
        {**base, "structured": {**base["structured"], "header": {"type": "image", "attachment": attachment_id}}},
        format="json",
    )

    assert unknown.status_code == 400
    assert "structured" in unknown.json()
    assert created.status_code == 201
    rendered = staff_api.post(f"/api/standard-responses/{created.json()['id']}/render/", {}, format="json").json()
    header = rendered["payload"]["header"]
    assert {key: header[key] for key in ("type", "attachment", "contentType", "fileName", "size")} == {
        "type": "image", "attachment": attachment_id, "contentType": "image/png", "fileName": "banner.png",
        "size": len(PNG)}
    assert header["url"].startswith("http://127.0.0.1:8000/files/")  # a signed link (tests/test_media.py)


@pytest.mark.django_db
def test_render_refuses_unknown_field_objects(staff_api, spec_response):
    response = staff_api.post(
        "/api/standard-responses/000G9aF2PQ3A000K/render/", {"fields": {"Customer": {}}}, format="json"
    )

    assert response.status_code == 400
    assert "fields" in response.json()


@pytest.mark.django_db
def test_emojis_default_set_and_configured_attribute(staff_api):
    assert len(staff_api.get("/api/emojis/").json()) >= 10
    staff_api.post(
        "/api/business-attributes/",
        {"name": "Support emojis", "type": "emojis", "values": [{"name": "1f970"}, {"name": "1f44d"}]},
        format="json",
    )
    staff_api.patch(
        "/api/options/interaction-workspace/whatsappsession.emojis-business-attribute/",
        {"value": "Support emojis"},
        format="json",
    )

    assert staff_api.get("/api/emojis/").json() == [{"code": "1f970", "emoji": "🥰"}, {"code": "1f44d", "emoji": "👍"}]
