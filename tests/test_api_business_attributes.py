import pytest

from channels_app.models import BusinessAttribute


@pytest.mark.django_db
def test_required_business_attributes_are_present(staff_api):
    response = staff_api.get("/api/business-attributes/?page_size=100")

    attributes = {a["name"]: a for a in response.json()["results"]}
    subtype_values = [v["name"] for v in attributes["Interaction Subtype"]["values"]]
    assert "InternalConferenceInvite" in subtype_values
    nickname = next(v for v in attributes["Contact Attributes"]["values"] if v["name"] == "_msg_ProfileNickname")
    assert nickname["display_name"] == "Profile Nickname"
    assert nickname["annex"] == {"settings": {"is-searchable": "false", "is-sortable": "false"}}
    assert attributes["Disposition Code"]["values"]
    assert attributes["Emojis"]["type"] == "emojis"
    assert len(attributes["Emojis"]["values"]) >= 10


@pytest.mark.django_db
def test_create_attribute_with_values_and_replace_them(staff_api):
    payload = {"name": "Reason", "type": "custom", "values": [{"name": "billing"}, {"name": "tech", "order": 5}]}

    created = staff_api.post("/api/business-attributes/", payload, format="json")

    assert created.status_code == 201, created.json()
    attribute_id = created.json()["id"]
    assert [v["name"] for v in created.json()["values"]] == ["billing", "tech"]
    updated = staff_api.patch(
        f"/api/business-attributes/{attribute_id}/", {"values": [{"name": "other"}]}, format="json"
    )
    assert [v["name"] for v in updated.json()["values"]] == ["other"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "", "type": "custom"}, "name"),
        ({"name": "Emojis", "type": "custom"}, "name"),
        ({"name": "X", "type": "nope"}, "type"),
        ({"name": "X", "values": [{"name": "a"}, {"name": "a"}]}, "values[1].name"),
        ({"name": "X", "values": [{"name": "a", "annex": {"settings": "flat"}}]}, "values[0].annex"),
        ({"name": "X", "values": [{"display_name": "no name"}]}, "values"),
    ],
)
def test_invalid_attribute_is_400_naming_the_field(staff_api, payload, field):
    before = BusinessAttribute.objects.count()

    response = staff_api.post("/api/business-attributes/", payload, format="json")

    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert BusinessAttribute.objects.count() == before
