import pytest

from channels_app import options_catalog
from channels_app.models import OptionValue
from channels_app.services.options import option_value


@pytest.mark.django_db
def test_list_by_section_shows_every_option_with_its_definition(staff_api):
    response = staff_api.get("/api/options/?section=interaction-workspace")

    assert response.status_code == 200
    rows = {row["name"]: row for row in response.json()}
    expected = {o.name for o in options_catalog.OPTIONS if o.section == "interaction-workspace"}
    assert set(rows) == expected
    size = rows["whatsappsession.max-text-message-size"]
    assert size == {
        "name": "whatsappsession.max-text-message-size",
        "section": "interaction-workspace",
        "value": "4096",
        "default": "4096",
        "valid_values": "Any integer from 1 to 2147483647",
        "takes_effect": "At the next interaction",
        "read_by": "server",
        "type": "integer",
        "description": size["description"],
        "channel": None,
        "overridden": False,
    }


@pytest.mark.django_db
def test_unknown_section_is_400(staff_api):
    response = staff_api.get("/api/options/?section=nope")

    assert response.status_code == 400
    assert "section" in response.json()


@pytest.mark.django_db
def test_patch_sets_a_valid_value(staff_api):
    response = staff_api.patch(
        "/api/options/interaction-workspace/whatsappsession.transcript-interactions-count/", {"value": 1000},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["value"] == "1000"
    assert option_value(section="interaction-workspace", name="whatsappsession.transcript-interactions-count") == 1000


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("interaction-workspace/whatsappsession.transcript-interactions-count", 1001),
        ("interaction-workspace/whatsappsession.transcript-interactions-count", 0),
        ("interaction-workspace/whatsappsession.max-text-message-size", "many"),
        ("interaction-workspace/whatsappsession.enable-free-msg-timespan-monitoring", "perhaps"),
        ("interaction-workspace/whatsappsession.outbound-session-config", "[1, 2]"),
        ("chat-server/transcript-auto-save", "3"),
        ("channel/inbound-route-by-call", "no-tenant"),
        ("channel/inbound-route-by-call", "42:queue"),
    ],
)
def test_patch_refuses_invalid_values_with_the_valid_values(staff_api, tenant, path, value):
    section, name = path.split("/")
    before = OptionValue.objects.get(section=section, name=name, channel=None).value

    response = staff_api.patch(f"/api/options/{path}/", {"value": value}, format="json")

    assert response.status_code == 400
    assert "value" in response.json()
    message = response.json()["value"][0]
    definition = options_catalog.get_option(section, name)
    if definition.type != options_catalog.OptionType.QUEUE_KEY or ":" not in str(value):
        assert definition.valid_values in message
    assert OptionValue.objects.get(section=section, name=name, channel=None).value == before


@pytest.mark.django_db
def test_channel_override_changes_only_that_channel(staff_api, channel):
    path = "/api/options/interaction-workspace/whatsappsession.max-text-message-size/"

    response = staff_api.patch(path, {"value": 100, "channel": channel.channel_id}, format="json")

    assert response.status_code == 200
    assert response.json()["overridden"] is True
    name = "whatsappsession.max-text-message-size"
    assert option_value(section="interaction-workspace", name=name, channel=channel) == 100
    assert option_value(section="interaction-workspace", name=name) == 4096
    listed = staff_api.get(f"/api/options/?section=interaction-workspace&channel={channel.channel_id}").json()
    assert {row["name"]: row["value"] for row in listed}[name] == "100"

    assert staff_api.delete(f"{path}?channel={channel.channel_id}").status_code == 204
    assert option_value(section="interaction-workspace", name=name, channel=channel) == 4096


@pytest.mark.django_db
def test_unknown_option_or_channel(staff_api):
    assert staff_api.patch("/api/options/dms/nope/", {"value": 1}, format="json").status_code == 404
    assert staff_api.get("/api/options/nope/session-shutdown-timeout/").status_code == 404
    response = staff_api.patch(
        "/api/options/dms/session-shutdown-timeout/", {"value": 900, "channel": "ghost"}, format="json"
    )
    assert response.status_code == 400
    assert "channel" in response.json()


@pytest.mark.django_db
def test_patch_without_value_is_400(staff_api):
    response = staff_api.patch("/api/options/dms/session-shutdown-timeout/", {}, format="json")

    assert response.status_code == 400
    assert "value" in response.json()


@pytest.mark.django_db
def test_reset_global_value_restores_the_default(staff_api):
    staff_api.patch("/api/options/dms/session-shutdown-timeout/", {"value": 600}, format="json")

    assert staff_api.delete("/api/options/dms/session-shutdown-timeout/").status_code == 204
    assert option_value(section="dms", name="session-shutdown-timeout") == 1800
