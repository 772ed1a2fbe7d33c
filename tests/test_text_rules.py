"""The text rules (channels_app/text_rules.py, API.md "Safe by default"): a NUL character or a lone UTF-16
surrogate anywhere a request carries text is refused with the code of its door (API 400 naming the field,
ESP 904, /nexus 400 with status 520, admin forms, CSV audiences), and nothing is stored; a customer text
over MAX_INBOUND_TEXT_BYTES too; the customer text is not copied whole into the interaction's user data."""

import json

import pytest

from channels_app.lean import json_loads_texts_kept
from channels_app.models import Contact, Interaction, Message, OptionValue, StandardResponse, Tenant
from channels_app.text_rules import text_rule_broken, text_rule_broken_at
from tests.factories import ContactFactory
from tests.test_esp import SPEC_RESPONSE, post_esp, simulator_channel, spec_request, spec_response  # noqa: F401
from tests.test_nexus import _text, post, sms_channel  # noqa: F401

POISONS = ["\ud800", "\udfff", "a\udbffb", "\ud83d", "x\x00y"]  # lone surrogates (high, low), NUL


def raw_json(value) -> bytes:
    """JSON as a client writes it: a lone surrogate becomes an escape such as \\ud800 (json.dumps escapes it)."""
    return json.dumps(value).encode()


def test_the_rules_refuse_nul_and_lone_surrogates_and_take_pairs():
    assert text_rule_broken("x\x00") == "a NUL character (\\u0000)"
    assert text_rule_broken("\ud800") == "a lone surrogate (\\ud800)"
    assert text_rule_broken("\udc00 after") == "a lone surrogate (\\udc00)"
    assert text_rule_broken(json.loads('"\\ud83d\\ude00"')) is None  # a pair is one character: 😀
    assert text_rule_broken("Grüße 😀 \t\n") is None
    assert text_rule_broken_at({"a": [{"b": "ok"}, {"c\ud800": 1}]})[0] == "a[1].c\\ud800"  # the key, escaped


@pytest.mark.parametrize(("body", "kept"), [
    (b'{"text": "Hello", "n": 1, "list": ["a", {"b": null}]}', True),
    (b'{"text": "\\ud83d\\ude00 Gr\xc3\xbc\xc3\x9fe"}', True),  # a pair of escapes, and UTF-8: one character each
    (b'{"text": "x\\u0000y"}', False),
    (b'{"te\\u0000xt": "x"}', False),  # in a key
    (b'{"text": "\\ud800"}', False),  # a lone surrogate: orjson refuses it, json reads it
    (b'{"text": "\\udc00 after"}', False),
    (b'{"text": "\\\\u0000"}', False),  # a backslash, then "u0000": no NUL, but not told apart without reading
    ('{"text": "x"}'.encode("utf-16"), False),  # read by the json module
    (b'{"n": 1.5}', False),  # a float: read by the json module
])
def test_a_body_said_to_keep_the_text_rules_keeps_them(body, kept):
    value, texts_kept = json_loads_texts_kept(body)

    assert value == json.loads(body)
    assert texts_kept is kept
    if texts_kept:
        assert text_rule_broken_at(value) is None


# --- API -------------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("poison", POISONS)
def test_the_api_refuses_them_naming_the_field(staff_api, poison):
    response = staff_api.generic("POST", "/api/tenants/", raw_json({"id": 5, "name": f"Tenant {poison}"}),
                                 content_type="application/json")

    assert response.status_code == 400, response.content
    assert list(response.json()) == ["name"]
    assert not Tenant.objects.filter(id=5).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("poison", POISONS)
def test_the_render_endpoint_refuses_them(staff_api, spec_response, poison):  # noqa: F811
    response = staff_api.generic(
        "POST", "/api/standard-responses/000G9aF2PQ3A000K/render/",
        raw_json({"fields": {"Contact": {"FirstName": poison}}}), content_type="application/json",
    )

    assert response.status_code == 400, response.content
    assert "fields" in response.json()


@pytest.mark.django_db
def test_a_multipart_field_is_refused_naming_it(staff_api, channel):
    response = staff_api.post("/api/campaigns/", {"name": "x\x00", "channel": channel.channel_id},
                              format="multipart")

    assert response.status_code == 400
    assert "name" in response.json()


# --- ESP -------------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("poison", POISONS)
def test_esp_refuses_them_with_904(staff_api, simulator_channel, spec_response, poison):  # noqa: F811
    rows = (Interaction.objects.count(), Message.objects.count(), Contact.objects.count())
    invite = spec_request(Parameters={"Contact": {"FirstName": poison}})
    validate = {"ReferenceId": 2, "AppName": "DMS 91", "Service": "Messaging", "Method": "ValidateContact",
                "Parameters": {"_umsChannel": "channel-ghub-simulator", "Id": f"+1650466{poison}1149"}}

    for request in (invite, validate):
        response = staff_api.generic("POST", "/esp", raw_json(request), content_type="application/json")
        assert response.status_code == 400, response.content
        assert response.json()["Error"]["Code"] == 904
        assert "incorrect" in response.json()["Error"]["Message"]
    assert (Interaction.objects.count(), Message.objects.count(), Contact.objects.count()) == rows


# --- /nexus ----------------------------------------------------------------------------------------------------------


def _poisoned_messages(poison: str) -> list[dict]:
    text = _text(text=f"Hello {poison}")
    nickname = _text()
    nickname["channel"]["from"]["nickname"] = poison
    email = {"type": "Email", "subject": f"Re {poison}", "content": [{"type": "text", "text": "hi"}],
             "channel": _text()["channel"]}
    receipt = {"type": "Receipt", "status": "Failed", "reasons": [{"code": 350, "message": poison}],
               "channel": {"messageId": "ext-1"}}
    key = _text()
    key[f"extra{poison}"] = 1
    return [text, nickname, email, receipt, key]


@pytest.mark.django_db
@pytest.mark.parametrize("poison", POISONS)
def test_nexus_refuses_them_with_520_and_stores_nothing(client, sms_channel, poison):  # noqa: F811
    for message in _poisoned_messages(poison):
        response = post(client, raw_json({"messages": [_text(message_id="ok-1"), message]}))

        assert response.status_code == 400, response.content
        body = response.json()
        assert body["status"]["code"] == 520
        assert "messages[1]" in body["status"]["message"]
    assert not Message.objects.exists() and not Interaction.objects.exists()


@pytest.mark.django_db
def test_a_customer_text_over_max_inbound_text_bytes_is_refused(client, sms_channel, settings):  # noqa: F811
    settings.MAX_INBOUND_TEXT_BYTES = 100
    at_the_limit = "é" * 50  # 100 bytes of UTF-8
    over = "é" * 50 + "x"

    refused = post(client, {"messages": [_text(message_id="m-2", text=over)]})
    refused_email = post(client, {"messages": [{"type": "Email", "channel": _text(message_id="m-3")["channel"],
                                                "content": [{"type": "html", "text": over}]}]})
    accepted = post(client, {"messages": [_text(message_id="m-1", text=at_the_limit)]})

    assert refused.status_code == refused_email.status_code == 400
    assert refused.json()["status"]["code"] == 520
    assert "messages[0].text is 101 bytes" in refused.json()["status"]["message"]
    assert "messages[0].content[0].text" in refused_email.json()["status"]["message"]
    assert accepted.status_code == 200
    assert list(Message.objects.values_list("text", flat=True)) == [at_the_limit]


@pytest.mark.django_db
def test_the_customer_text_is_not_copied_whole_into_user_data(client, sms_channel):  # noqa: F811
    long_text = "word " * 10_000

    response = post(client, {"messages": [_text(text=long_text)]})

    assert response.status_code == 200
    message = Message.objects.get()
    assert message.text == long_text
    user_data = message.interaction.user_data
    assert user_data["_umsMsgPlainText"] == long_text[:256]
    assert len(json.dumps(user_data)) < 2000


# --- admin forms and files ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_admin_json_field_refuses_a_lone_surrogate(admin_client, tenant):
    contact = ContactFactory(tenant=tenant, client_id="15556667777")

    response = admin_client.post(f"/admin/channels_app/contact/{contact.pk}/change/", {
        "client_id": "15556667777", "attributes": '{"MyFC_BillAmount": "\\ud800"}',
    })

    assert response.status_code == 200
    assert "lone surrogate" in response.content.decode()
    assert Contact.objects.get().attributes == {}


@pytest.mark.django_db
def test_the_standard_response_editor_refuses_a_lone_surrogate(admin_client):
    response = admin_client.post("/admin/channels_app/standardresponse/add/?content_type=reply_buttons", {
        "id": "SR-1", "name": "Buttons", "content_type": "reply_buttons", "body": "Pick one",
        "buttons": '[{"title": "\\udfff"}]',
    })

    assert "lone surrogate" in response.content.decode()
    assert not StandardResponse.objects.exists()


@pytest.mark.django_db
def test_an_option_file_with_a_nul_character_is_refused_whole(staff_user):
    from channels_app.errors import InvalidParameter
    from channels_app.services.options import options_import_cfg

    before = list(OptionValue.objects.values_list("pk", "value"))

    with pytest.raises(InvalidParameter, match="Line 3 .* NUL"):
        options_import_cfg(text="[dms]\nsession-shutdown-timeout = 60\nx = \x00\n")
    assert list(OptionValue.objects.values_list("pk", "value")) == before
