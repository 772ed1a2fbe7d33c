"""Field codes, the spec's limits of structured content, and channel payloads (`channels_app.rendering`).

Pure functions: no database, no Django fixtures.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels_app.rendering import (
    ContentError,
    FieldCode,
    FieldCodeSyntaxError,
    check_editable_parameter,
    normalize_field_values,
    parse_template,
    render_payload,
    render_template,
    template_field_codes,
    validate_structured,
)

# The ESP request of dms-invite-to-chat.txt (the DMS log), in the JSON form of API.md.
INVITE_TO_CHAT_PARAMETERS = {
    "_umsChannel": "channel-whatsapp-REAL",
    "_umsClientId": "15556667777",
    "StandardResponseId": "000G9aF2PQ3A000K",
    "TerminateSessionFlag": "false",
    "Contact": {
        "FirstName": "John",
        "LastName": "Smith",
        "MyFC_BillAmount": "$129.99",
        "MyFC_Date": "March 5 / 2020",
    },
    "CustomProperties": {
        "OtherProperty": [
            {"Name": "CustomProp_Date", "Value": "March 7 / 2020"},
            {"Name": "CustomProp Time", "Value": "3:00 PM"},
        ]
    },
}
INVITE_TO_CHAT_TEXT = (
    "Dear <$Contact.FirstName$> <$Contact.LastName$>, your bill of <$Contact.MyFC_BillAmount$> is due "
    "<$Contact.MyFC_Date$>. Our agent will call you <$CustomProperties.CustomProp_Date$> at "
    "<$CustomProperties.CustomProp Time$>."
)
INVITE_TO_CHAT_RENDERED = (
    "Dear John Smith, your bill of $129.99 is due March 5 / 2020. Our agent will call you March 7 / 2020 at 3:00 PM."
)
NOTIFICATION = {"template": {"name": "bill_due", "id": "1234", "language": "en"}}
CONTACT = {"Contact": {"FirstName": "John", "LastName": "Smith"}}


def errors_of(content_type: str, body: str, structured: dict) -> dict[str, list[str]]:
    with pytest.raises(ContentError) as caught:
        validate_structured(content_type, body, structured)
    return caught.value.errors


def rendering_errors(content_type: str, body: str, structured: dict, values: dict) -> dict[str, list[str]]:
    with pytest.raises(ContentError) as caught:
        render_payload(content_type, body, structured, values)
    return caught.value.errors


def reply_buttons(count: int) -> list[dict[str, str]]:
    return [{"id": f"b{index}", "title": f"Option {index}"} for index in range(count)]


def list_rows(count: int) -> list[dict[str, str]]:
    return [{"id": f"r{index}", "title": f"Row {index}"} for index in range(count)]


# --- field codes: parsing --------------------------------------------------------------------------


def test_parse_template_splits_literals_and_field_codes():
    assert parse_template("Hi <$Contact.FirstName$>, at <$CustomProperties.CustomProp Time$>!") == (
        "Hi ",
        FieldCode("Contact", "FirstName"),
        ", at ",
        FieldCode("CustomProperties", "CustomProp Time"),
        "!",
    )


def test_parse_template_is_cached():
    text = "Cached <$Agent.Signature$>"
    assert parse_template(text) is parse_template(text)


def test_text_without_field_codes_parses_to_itself():
    assert parse_template("no codes $> here") == ("no codes $> here",)
    assert parse_template("") == ()


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("Hi <$Contact.FirstName", 3, "no closing"),
        ("<$Customer.FirstName$>", 0, "unknown object 'Customer'"),
        ("Bill: <$Contact.$>", 6, "property after 'Contact.' is empty"),
        ("<$ContactFirstName$>", 0, "no dot"),
        ("ok <$Contact.Id$> then <$$>", 23, "empty"),
        ("<$Contact.First-Name$>", 0, "letters, digits, underscores and spaces"),
        ("<$Contact.First <$Contact.LastName$>", 0, "no closing"),
    ],
)
def test_malformed_field_code_names_its_position(text, position, reason):
    with pytest.raises(FieldCodeSyntaxError) as caught:
        parse_template(text)
    assert caught.value.position == position
    assert reason in str(caught.value)
    assert f"position {position}" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_template_field_codes_lists_each_code_once_in_order():
    text = "<$Contact.LastName$> <$Agent.FullName$> <$Contact.LastName$> <$CustomProperties.CustomProp Time$>"
    assert template_field_codes(text) == ["Contact.LastName", "Agent.FullName", "CustomProperties.CustomProp Time"]


# --- field codes: rendering ------------------------------------------------------------------------


def test_render_template_reports_missing_codes_by_name_once_in_order():
    # given
    text = "<$Contact.Title$> <$Contact.FirstName$> <$Agent.Signature$> <$Contact.Title$>"
    # when
    result = render_template(text, CONTACT)
    # then
    assert result.text == " John  "
    assert result.missing == ("Contact.Title", "Agent.Signature")


def test_render_template_prefers_exact_property_then_any_case():
    values = {"Contact": {"firstname": "lower", "FirstName": "Exact", "LASTNAME": "Smith"}}
    assert render_template("<$Contact.FirstName$> <$Contact.LastName$>", values).text == "Exact Smith"


def test_full_name_is_derived_from_first_and_last_name():
    values = {"Contact": {"FirstName": "John", "LastName": "Smith"}, "Agent": {"FirstName": "Ann"}}
    result = render_template("<$Contact.FullName$> / <$Agent.FullName$> / <$Interaction.FullName$>", values)
    assert result.text == "John Smith / Ann / "
    assert result.missing == ("Interaction.FullName",)


def test_given_full_name_wins_over_derived_one():
    values = {"Contact": {"FirstName": "John", "LastName": "Smith", "FullName": "Mr J. Smith"}}
    assert render_template("<$Contact.FullName$>", values).text == "Mr J. Smith"


def test_values_are_converted_with_str_and_never_rendered_again():
    values = {"Contact": {"Id": 42, "FirstName": "<$Contact.LastName$>", "LastName": None}}
    result = render_template("<$Contact.Id$> <$Contact.FirstName$> <$Contact.LastName$>", values)
    assert result.text == "42 <$Contact.LastName$> "
    assert result.missing == ("Contact.LastName",)


@pytest.mark.parametrize("values", [None, "Contact", 12, ["Contact"], {"Contact": "John"}, {"Contact": None}])
def test_values_that_are_not_mappings_count_as_no_values(values):
    result = render_template("Hello <$Contact.FirstName$>", values)
    assert result.text == "Hello "
    assert result.missing == ("Contact.FirstName",)


def test_a_value_whose_str_fails_counts_as_missing():
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

    result = render_template("[<$Contact.FirstName$>]", {"Contact": {"FirstName": Broken()}})
    assert result.text == "[]"
    assert result.missing == ("Contact.FirstName",)


def test_render_template_raises_for_a_malformed_template():
    with pytest.raises(FieldCodeSyntaxError):
        render_template("Hi <$Contact.FirstName", CONTACT)


# --- field values -----------------------------------------------------------------------------


def test_normalize_field_values_flattens_the_kvlist_of_custom_properties():
    values = normalize_field_values(
        contact={"FirstName": "John"}, custom_properties=INVITE_TO_CHAT_PARAMETERS["CustomProperties"]
    )
    assert values == {
        "Contact": {"FirstName": "John"},
        "Agent": {},
        "Interaction": {},
        "CustomProperties": {"CustomProp_Date": "March 7 / 2020", "CustomProp Time": "3:00 PM"},
    }


@pytest.mark.parametrize(
    ("custom_properties", "expected"),
    [
        (
            {"OtherProperty": {"Name": "CustomProp_Date", "Value": "March 7 / 2020"}},
            {"CustomProp_Date": "March 7 / 2020"},
        ),
        ({"CustomProp_Date": "March 7 / 2020"}, {"CustomProp_Date": "March 7 / 2020"}),
        ([{"Name": "A", "Value": "1"}, {"OtherProperty": {"Name": "B", "Value": "2"}}], {"A": "1", "B": "2"}),
        ({"OtherProperty": [{"Name": "A", "Value": "1"}, "junk", {"Value": "no name"}], "C": 3}, {"A": "1", "C": 3}),
        ("not a KVList", {}),
        (None, {}),
    ],
)
def test_normalize_field_values_accepts_every_shape_of_custom_properties(custom_properties, expected):
    assert normalize_field_values(custom_properties=custom_properties)["CustomProperties"] == expected


def test_invite_to_chat_example_renders_end_to_end():
    # given: the standard response of the spec's example, and the values of its ESP request
    values = normalize_field_values(
        contact=INVITE_TO_CHAT_PARAMETERS["Contact"],
        custom_properties=INVITE_TO_CHAT_PARAMETERS["CustomProperties"],
    )
    # when
    result = render_template(INVITE_TO_CHAT_TEXT, values)
    rendered = render_payload("notification", INVITE_TO_CHAT_TEXT, NOTIFICATION, values)
    # then
    assert result.text == INVITE_TO_CHAT_RENDERED
    assert result.missing == ()
    assert rendered.payload == {
        "type": "Notification",
        "text": INVITE_TO_CHAT_RENDERED,
        "template": {"name": "bill_due", "id": "1234", "language": "en", "parameters": []},
    }


def test_invite_to_chat_example_as_a_whatsapp_template_with_numbered_parameters():
    # given
    body = "Dear {{1}} {{2}}, your bill of {{3}} is due {{4}}. Our agent will call you {{5}} at {{6}}."
    structured = {
        **NOTIFICATION,
        "parameters": {str(number): code for number, code in enumerate(parse_codes(INVITE_TO_CHAT_TEXT), start=1)},
    }
    values = normalize_field_values(
        contact=INVITE_TO_CHAT_PARAMETERS["Contact"],
        custom_properties=INVITE_TO_CHAT_PARAMETERS["CustomProperties"],
    )
    # when
    rendered = render_payload("notification", body, structured, values)
    # then
    assert rendered.payload["text"] == INVITE_TO_CHAT_RENDERED
    assert rendered.payload["template"]["parameters"] == [
        "John",
        "Smith",
        "$129.99",
        "March 5 / 2020",
        "March 7 / 2020",
        "3:00 PM",
    ]
    assert rendered.missing == ()


def parse_codes(text: str) -> list[str]:
    return [f"<${code}$>" for code in template_field_codes(text)]


def test_missing_values_of_a_notification_are_reported_not_raised():
    structured = {**NOTIFICATION, "parameters": {"1": "<$Contact.FirstName$>", "2": "<$Contact.MyFC_BillAmount$>"}}
    rendered = render_payload("notification", "Dear {{1}}, you owe {{2}}.", structured, CONTACT)
    assert rendered.payload["text"] == "Dear John, you owe ."
    assert rendered.missing == ("Contact.MyFC_BillAmount",)


# --- limits, each at its boundary and one past it --------------------------------------------------


@pytest.mark.parametrize(("length", "valid"), [(60, True), (61, False)])
def test_rich_media_header_text_holds_60_characters(length, valid):
    structured = {**NOTIFICATION, "header": {"type": "text", "text": "h" * length}}
    if valid:
        assert validate_structured("rich_media", "Body", structured)["header"] == {"type": "text", "text": "h" * 60}
    else:
        assert errors_of("rich_media", "Body", structured) == {
            "structured.header.text": ["Ensure this field has no more than 60 characters (it has 61)."]
        }


@pytest.mark.parametrize("content_type", ["notification", "rich_media"])
@pytest.mark.parametrize(("length", "valid"), [(1024, True), (1025, False)])
def test_template_body_holds_1024_characters(content_type, length, valid):
    if valid:
        validate_structured(content_type, "b" * length, NOTIFICATION)
    else:
        assert errors_of(content_type, "b" * length, NOTIFICATION) == {
            "body": ["Ensure this field has no more than 1024 characters (it has 1025)."]
        }


@pytest.mark.parametrize(("length", "valid"), [(1024, True), (1025, False)])
def test_interactive_body_holds_1024_characters(length, valid):
    structured = {"buttons": reply_buttons(1)}
    if valid:
        validate_structured("reply_buttons", "b" * length, structured)
    else:
        assert list(errors_of("reply_buttons", "b" * length, structured)) == ["body"]


@pytest.mark.parametrize(("length", "valid"), [(60, True), (61, False)])
def test_footer_holds_60_characters(length, valid):
    structured = {**NOTIFICATION, "footer": "f" * length}
    if valid:
        assert validate_structured("rich_media", "Body", structured)["footer"] == "f" * 60
    else:
        assert list(errors_of("rich_media", "Body", structured)) == ["structured.footer"]


@pytest.mark.parametrize(("count", "valid"), [(3, True), (4, False)])
def test_rich_media_holds_up_to_3_quick_replies(count, valid):
    buttons = [{"type": "quick_reply", "text": f"Choice {index}"} for index in range(count)]
    structured = {**NOTIFICATION, "buttons": buttons}
    if valid:
        assert len(validate_structured("rich_media", "Body", structured)["buttons"]) == 3
    else:
        assert errors_of("rich_media", "Body", structured) == {
            "structured.buttons": ["Ensure this list has no more than 3 buttons (it has 4)."]
        }


@pytest.mark.parametrize(("count", "valid"), [(3, True), (4, False)])
def test_reply_buttons_hold_up_to_3_buttons(count, valid):
    structured = {"buttons": reply_buttons(count)}
    if valid:
        assert len(validate_structured("reply_buttons", "Pick one", structured)["buttons"]) == 3
    else:
        assert errors_of("reply_buttons", "Pick one", structured) == {
            "structured.buttons": ["Ensure this list has no more than 3 buttons (it has 4)."]
        }


@pytest.mark.parametrize("buttons", [[], None])
def test_reply_buttons_need_at_least_one_button(buttons):
    assert errors_of("reply_buttons", "Pick one", {"buttons": buttons}) == {
        "structured.buttons": ["Add at least 1 button."]
    }


@pytest.mark.parametrize(("count", "valid"), [(10, True), (11, False)])
def test_list_holds_up_to_10_rows_across_sections(count, valid):
    structured = {
        "button": "Menu",
        "sections": [
            {"title": "First", "rows": list_rows(count)[:5]},
            {"title": "Second", "rows": list_rows(count)[5:]},
        ],
    }
    if valid:
        cleaned = validate_structured("list", "Choose", structured)
        assert sum(len(section["rows"]) for section in cleaned["sections"]) == 10
    else:
        assert errors_of("list", "Choose", structured) == {
            "structured.sections": ["A list message holds at most 10 rows across its sections (it has 11)."]
        }


def test_list_needs_at_least_one_row():
    assert errors_of("list", "Choose", {"button": "Menu", "sections": [{"rows": []}]}) == {
        "structured.sections[0].rows": ["Add at least 1 row."]
    }


@pytest.mark.parametrize(("length", "valid"), [(20, True), (21, False)])
def test_reply_button_title_holds_20_characters(length, valid):
    structured = {"buttons": [{"id": "yes", "title": "t" * length}]}
    if valid:
        validate_structured("reply_buttons", "Pick one", structured)
    else:
        assert errors_of("reply_buttons", "Pick one", structured) == {
            "structured.buttons[0].title": ["Ensure this field has no more than 20 characters (it has 21)."]
        }


@pytest.mark.parametrize(("length", "valid"), [(20, True), (21, False)])
def test_list_button_and_row_titles_hold_20_characters(length, valid):
    structured = {"button": "m" * length, "sections": [{"rows": [{"id": "r", "title": "t" * length}]}]}
    if valid:
        validate_structured("list", "Choose", structured)
    else:
        assert set(errors_of("list", "Choose", structured)) == {
            "structured.button",
            "structured.sections[0].rows[0].title",
        }


@pytest.mark.parametrize(("length", "valid"), [(20, True), (21, False)])
def test_rich_media_button_text_holds_20_characters(length, valid):
    structured = {**NOTIFICATION, "buttons": [{"type": "quick_reply", "text": "t" * length}]}
    if valid:
        validate_structured("rich_media", "Body", structured)
    else:
        assert list(errors_of("rich_media", "Body", structured)) == ["structured.buttons[0].text"]


@pytest.mark.parametrize(("count", "valid"), [(1, False), (2, True), (5, True), (6, False)])
def test_abc_quick_replies_hold_2_to_5_items(count, valid):
    structured = {"items": [{"identifier": f"i{index}", "title": f"Item {index}"} for index in range(count)]}
    if valid:
        assert validate_structured("abc_quick_replies", "Pick one", structured) == structured
    else:
        assert list(errors_of("abc_quick_replies", "Pick one", structured)) == ["structured.items"]


@pytest.mark.parametrize(("count", "valid"), [(10, True), (11, False)])
def test_abc_carousel_holds_up_to_10_items(count, valid):
    structured = {"items": [{"title": f"Item {index}"} for index in range(count)]}
    if valid:
        validate_structured("abc_carousel", "", structured)
    else:
        assert list(errors_of("abc_carousel", "", structured)) == ["structured.items"]


# --- the rule for editable parameters in a header or button ---------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("two\nlines", "Must not contain new line characters."),
        ("carriage\rreturn", "Must not contain new line characters."),
        ("a\ttab", "Must not contain tab characters."),
        ("five     spaces", "Must not contain more than four consecutive spaces."),
    ],
)
def test_editable_parameter_rejects_new_lines_tabs_and_five_spaces(value, message):
    with pytest.raises(ContentError) as caught:
        check_editable_parameter(value, "structured.header.text")
    assert caught.value.errors == {"structured.header.text": [message]}


def test_editable_parameter_accepts_four_consecutive_spaces():
    check_editable_parameter("four    spaces", "structured.header.text")


@pytest.mark.parametrize(
    ("content_type", "structured", "field"),
    [
        ("rich_media", {**NOTIFICATION, "header": {"type": "text", "text": "a\tb"}}, "structured.header.text"),
        (
            "rich_media",
            {**NOTIFICATION, "buttons": [{"type": "quick_reply", "text": "a     b"}]},
            "structured.buttons[0].text",
        ),
        ("reply_buttons", {"buttons": [{"id": "x", "title": "a\nb"}]}, "structured.buttons[0].title"),
    ],
)
def test_validation_applies_the_editable_parameter_rule_to_headers_and_buttons(content_type, structured, field):
    assert field in errors_of(content_type, "Body", structured)


def test_the_editable_parameter_rule_does_not_apply_to_the_body():
    validate_structured("rich_media", "line one\nline two\twith     spaces", NOTIFICATION)


def test_rendering_rejects_a_tab_substituted_into_a_header():
    structured = {**NOTIFICATION, "header": {"type": "text", "text": "Hello <$Contact.FirstName$>"}}
    values = {"Contact": {"FirstName": "John\tSmith"}}
    assert rendering_errors("rich_media", "Body", structured, values) == {
        "structured.header.text": ["Must not contain tab characters."]
    }


def test_rendering_rejects_a_new_line_substituted_into_a_reply_button():
    structured = {"buttons": [{"id": "me", "title": "<$Agent.FirstName$>"}]}
    errors = rendering_errors("reply_buttons", "Pick one", structured, {"Agent": {"FirstName": "An\nn"}})
    assert errors == {"structured.buttons[0].title": ["Must not contain new line characters."]}


def test_rendering_rejects_five_spaces_in_a_dynamic_url_parameter():
    button = {"type": "url", "text": "Track", "url": "https://x.example/t/{{1}}", "dynamic": True}
    structured = {**NOTIFICATION, "buttons": [{**button, "parameter": "<$Interaction.Id$>"}]}
    errors = rendering_errors("rich_media", "Body", structured, {"Interaction": {"Id": "a     b"}})
    assert errors == {"structured.buttons[0].parameter": ["Must not contain more than four consecutive spaces."]}


def test_rendering_rechecks_header_length_on_the_result():
    # given: 50 literal characters pass validation; the value makes 61
    structured = {**NOTIFICATION, "header": {"type": "text", "text": "h" * 50 + "<$Contact.FirstName$>"}}
    validate_structured("rich_media", "Body", structured)
    # when
    errors = rendering_errors("rich_media", "Body", structured, {"Contact": {"FirstName": "x" * 11}})
    # then
    assert errors == {
        "structured.header.text": ["Ensure this field has no more than 60 characters once rendered (it has 61)."]
    }


def test_rendered_header_of_exactly_60_characters_is_accepted():
    structured = {**NOTIFICATION, "header": {"type": "text", "text": "h" * 50 + "<$Contact.FirstName$>"}}
    rendered = render_payload("rich_media", "Body", structured, {"Contact": {"FirstName": "x" * 10}})
    assert rendered.payload["header"] == {"type": "text", "text": "h" * 50 + "x" * 10}


def test_rendering_rechecks_body_length_with_parameters():
    structured = {**NOTIFICATION, "parameters": {"1": "<$Contact.FirstName$>"}}
    assert rendering_errors("notification", "b" * 1020 + "{{1}}", structured, {"Contact": {"FirstName": "12345"}}) == {
        "body": ["Ensure this field has no more than 1024 characters once rendered (it has 1025)."]
    }


def test_a_required_text_that_renders_empty_is_an_error():
    structured = {"buttons": [{"id": "me", "title": "<$Agent.FirstName$>"}]}
    assert rendering_errors("reply_buttons", "Pick one", structured, {}) == {
        "structured.buttons[0].title": ["Is empty once its field codes are rendered."]
    }


# --- structure ----------------------------------------------------------------------------------------


def test_validation_collects_every_error_before_raising():
    structured = {
        "template": {"language": "en"},
        "header": {"type": "text", "text": "h" * 61},
        "footer": "f" * 61,
        "buttons": [{"type": "quick_reply", "text": "Yes"}, {"type": "phone", "text": "Call", "phone": "555"}],
        "colour": "blue",
    }
    errors = errors_of("rich_media", "", structured)
    assert set(errors) == {
        "structured.colour",
        "structured.template.name",
        "structured.header.text",
        "body",
        "structured.footer",
        "structured.buttons[1].phone",
        "structured.buttons",
    }
    assert errors["structured.buttons"] == ["Quick reply and call-to-action buttons cannot be mixed."]


def test_malformed_field_code_in_structured_content_names_field_and_position():
    structured = {"buttons": [{"id": "x", "title": "Hi <$Contact.Name"}]}
    assert errors_of("reply_buttons", "Pick <$Foo.Bar$>", structured) == {
        "body": [
            "Malformed field code at position 5: unknown object 'Foo'; expected one of Contact, Agent, "
            "Interaction, CustomProperties."
        ],
        "structured.buttons[0].title": ["Malformed field code at position 3: '<$' has no closing '$>'."],
    }


def test_field_codes_do_not_count_towards_the_limit_before_rendering():
    header = {"type": "text", "text": "h" * 60 + "<$Contact.FirstName$>"}
    validate_structured("rich_media", "Body", {**NOTIFICATION, "header": header})


@pytest.mark.parametrize("structured", [{}, None])
def test_text_has_no_structured_content(structured):
    assert validate_structured("text", "Hello", structured) == {}
    assert errors_of("text", "Hello", {"buttons": []}) == {
        "structured": ["A text standard response has no structured content."]
    }


def test_unknown_content_type_is_an_error():
    assert list(errors_of("carrier_pigeon", "Hello", {})) == ["content_type"]


def test_notification_needs_a_template_name():
    assert errors_of("notification", "Hello", {"template": {"id": "1"}}) == {
        "structured.template.name": ["This field is required."]
    }


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"1": "a", "3": "c"}, "structured.parameters"),
        ({"0": "a"}, "structured.parameters.0"),
        ({"first": "a"}, "structured.parameters.first"),
        ({"1": ""}, "structured.parameters.1"),
    ],
)
def test_notification_parameters_are_numbered_from_1_without_gaps(parameters, field):
    assert field in errors_of("notification", "Hello", {**NOTIFICATION, "parameters": parameters})


def test_every_numbered_parameter_of_the_body_needs_a_value():
    structured = {**NOTIFICATION, "parameters": {"1": "<$Contact.FirstName$>"}}
    assert errors_of("notification", "Hi {{1}}, see {{2}}", structured) == {
        "body": ["{{2}} has no parameter 2 in structured.parameters."]
    }


@pytest.mark.parametrize(
    ("buttons", "field", "message"),
    [
        (
            [
                {"type": "phone", "text": "Call", "phone": "+15551234567"},
                {"type": "url", "text": "Visit", "url": "https://example.com"},
                {"type": "url", "text": "Other", "url": "https://example.org"},
            ],
            "structured.buttons",
            "Ensure this list has no more than 2 call-to-action buttons (it has 3).",
        ),
        (
            [
                {"type": "phone", "text": "Call", "phone": "+15551234567"},
                {"type": "phone", "text": "Call", "phone": "+15551234568"},
            ],
            "structured.buttons",
            "At most one phone button is allowed.",
        ),
        (
            [{"type": "phone", "text": "Call", "phone": "15551234567"}],
            "structured.buttons[0].phone",
            "Must be a phone number in E.164 format, such as +15551234567.",
        ),
        (
            [{"type": "url", "text": "Visit", "url": "https://example.com/{{1}}/x", "dynamic": True, "parameter": "a"}],
            "structured.buttons[0].url",
            "A dynamic URL has exactly one parameter, {{1}}, at its end.",
        ),
        (
            [{"type": "url", "text": "Visit", "url": "https://example.com/{{1}}"}],
            "structured.buttons[0].url",
            "A static URL has no parameter; set dynamic to true.",
        ),
        (
            [{"type": "url", "text": "Visit", "url": "ftp://example.com"}],
            "structured.buttons[0].url",
            "Must be an http or https URL.",
        ),
        (
            [{"type": "url", "text": "Visit", "url": "https://example.com/{{1}}", "dynamic": True}],
            "structured.buttons[0].parameter",
            "This field is required.",
        ),
    ],
)
def test_call_to_action_buttons_follow_whatsapps_rules(buttons, field, message):
    assert message in errors_of("rich_media", "Body", {**NOTIFICATION, "buttons": buttons})[field]


def test_ids_must_be_unique():
    structured = {"buttons": [{"id": "same", "title": "A"}, {"id": "same", "title": "B"}]}
    assert list(errors_of("reply_buttons", "Pick one", structured)) == ["structured.buttons[1].id"]


def test_list_takes_a_text_header_only():
    structured = {"header": {"type": "image", "attachment": 3}, "button": "Menu", "sections": [{"rows": list_rows(1)}]}
    assert errors_of("list", "Choose", structured) == {"structured.header.type": ["Must be one of text."]}


def test_attachment_is_a_positive_integer_id():
    for attachment in ("7", 0, True, None):
        structured = {**NOTIFICATION, "header": {"type": "image", "attachment": attachment}}
        assert list(errors_of("rich_media", "Body", structured)) == ["structured.header.attachment"]


# --- payloads -------------------------------------------------------------------------------------------


def test_text_payload():
    rendered = render_payload("text", "Hi <$Contact.FirstName$>", {}, CONTACT)
    assert rendered.payload == {"type": "Text", "text": "Hi John"}


def test_rich_media_payload_with_dynamic_url():
    # given
    structured = {
        "template": {"name": "order_shipped", "language": "en"},
        "parameters": {"1": "<$Contact.FirstName$>"},
        "header": {"type": "image", "attachment": 7},
        "footer": "Reply STOP to opt out",
        "buttons": [
            {"type": "phone", "text": "Call us", "phone": "+15551234567"},
            {
                "type": "url",
                "text": "Track <$Contact.FirstName$>",
                "url": "https://shop.example/track/{{1}}",
                "dynamic": True,
                "parameter": "<$Interaction.Id$>",
            },
        ],
    }
    values = {**CONTACT, "Interaction": {"Id": "0001 A/B"}}
    # when
    rendered = render_payload("rich_media", "Hi {{1}}, your order has shipped.", structured, values)
    # then
    assert rendered.payload == {
        "type": "RichMedia",
        "template": {"name": "order_shipped", "language": "en", "parameters": ["John"]},
        "header": {"type": "image", "attachment": 7},
        "text": "Hi John, your order has shipped.",
        "footer": "Reply STOP to opt out",
        "buttons": [
            {"type": "phone", "text": "Call us", "phone": "+15551234567"},
            {
                "type": "url",
                "text": "Track John",
                "url": "https://shop.example/track/0001%20A%2FB",
                "dynamic": True,
                "parameter": "0001 A/B",
            },
        ],
    }


def test_reply_buttons_payload():
    structured = {
        "header": {"type": "text", "text": "Hi <$Contact.FirstName$>"},
        "footer": "Support",
        "buttons": [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}],
    }
    rendered = render_payload("reply_buttons", "Did that help?", structured, CONTACT)
    assert rendered.payload == {
        "type": "ReplyButtons",
        "header": {"type": "text", "text": "Hi John"},
        "text": "Did that help?",
        "footer": "Support",
        "buttons": [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}],
    }


def test_list_payload():
    structured = {
        "button": "Pick a slot",
        "sections": [
            {"title": "Morning", "rows": [{"id": "am9", "title": "9:00", "description": "With <$Agent.FirstName$>"}]},
            {"title": "Afternoon", "rows": [{"id": "pm2", "title": "14:00"}]},
        ],
    }
    rendered = render_payload("list", "When shall we call?", structured, {"Agent": {"FirstName": "Ann"}})
    assert rendered.payload == {
        "type": "List",
        "text": "When shall we call?",
        "button": "Pick a slot",
        "sections": [
            {"title": "Morning", "rows": [{"id": "am9", "title": "9:00", "description": "With Ann"}]},
            {"title": "Afternoon", "rows": [{"id": "pm2", "title": "14:00"}]},
        ],
    }


def test_abc_payloads():
    quick = render_payload(
        "abc_quick_replies",
        "Hi <$Contact.FirstName$>, how can we help?",
        {"items": [{"identifier": "bill", "title": "My bill"}, {"identifier": "agent", "title": "An agent"}]},
        CONTACT,
    )
    picker = render_payload(
        "abc_list_picker",
        "",
        {"title": "Products", "sections": [{"title": "Phones", "items": [{"identifier": "p1", "title": "Phone"}]}]},
        {},
    )
    carousel = render_payload(
        "abc_carousel",
        "Our offers",
        {"items": [{"title": "Plan A", "subtitle": "Cheap", "image": 9, "url": "https://example.com/a"}]},
        {},
    )
    assert quick.payload == {
        "type": "AbcQuickReplies",
        "text": "Hi John, how can we help?",
        "items": [{"identifier": "bill", "title": "My bill"}, {"identifier": "agent", "title": "An agent"}],
    }
    assert picker.payload == {
        "type": "AbcListPicker",
        "title": "Products",
        "sections": [{"title": "Phones", "items": [{"identifier": "p1", "title": "Phone"}]}],
    }
    assert carousel.payload == {
        "type": "AbcCarousel",
        "text": "Our offers",
        "items": [{"title": "Plan A", "subtitle": "Cheap", "image": {"attachment": 9}, "url": "https://example.com/a"}],
    }


def test_render_payload_does_not_share_state_between_calls():
    structured = {**NOTIFICATION, "parameters": {"1": "<$Contact.FirstName$>"}}
    first = render_payload("notification", "Hi {{1}}", structured, CONTACT)
    first.payload["template"]["parameters"].append("mutated")
    first.payload["template"]["name"] = "mutated"
    second = render_payload("notification", "Hi {{1}}", structured, {"Contact": {"FirstName": "Ann"}})
    assert second.payload["template"] == {"name": "bill_due", "id": "1234", "language": "en", "parameters": ["Ann"]}


def test_render_payload_validates_what_json_cannot_key():
    structured = {**NOTIFICATION, "parameters": {1: "<$Contact.FirstName$>", "1": "<$Contact.LastName$>"}}
    with pytest.raises(ContentError):
        render_payload("notification", "Hi {{1}}", structured, CONTACT)


def test_render_payload_tells_true_from_one():
    button = {"type": "url", "text": "Go", "url": "https://x.example/{{1}}", "parameter": "p"}
    render_payload("rich_media", "Body", {**NOTIFICATION, "buttons": [{**button, "dynamic": True}]}, {})
    with pytest.raises(ContentError):
        render_payload("rich_media", "Body", {**NOTIFICATION, "buttons": [{**button, "dynamic": 1}]}, {})


# --- properties -------------------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
nested = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3)
)
arbitrary_values = st.one_of(
    nested,
    st.dictionaries(
        st.sampled_from(["Contact", "Agent", "Interaction", "CustomProperties"]) | st.text(),
        st.dictionaries(
            st.sampled_from(["FirstName", "LastName", "firstname", "CustomProp Time", "Id"]) | st.text(),
            nested,
            max_size=5,
        )
        | nested,
        max_size=5,
    ),
)
ANY_CODE_TEMPLATE = (
    "<$Contact.FirstName$> <$Contact.FullName$> <$Agent.FullName$> <$Interaction.Id$> "
    "<$CustomProperties.CustomProp Time$> <$Contact.firstname$>"
)


@settings(database=None, max_examples=100)
@given(values=arbitrary_values)
def test_rendering_never_raises_on_arbitrary_values(values):
    result = render_template(ANY_CODE_TEMPLATE, values)
    assert isinstance(result.text, str)
    assert set(result.missing) <= set(template_field_codes(ANY_CODE_TEMPLATE))


@settings(database=None, max_examples=100)
@given(values=arbitrary_values)
def test_render_payload_never_raises_on_arbitrary_values_except_for_limits(values):
    structured = {**NOTIFICATION, "parameters": {"1": "<$Contact.FirstName$>", "2": "<$CustomProperties.X$>"}}
    try:
        rendered = render_payload("notification", "Hi {{1}} {{2}} <$Agent.FullName$>", structured, values)
    except ContentError as exc:
        assert set(exc.errors) == {"body"}
    else:
        assert rendered.payload["text"].startswith("Hi ")


@settings(database=None, max_examples=100)
@given(text=st.text().filter(lambda text: "<$" not in text), values=arbitrary_values)
def test_text_without_field_codes_comes_back_unchanged(text, values):
    result = render_template(text, values)
    assert result.text == text
    assert result.missing == ()


@settings(database=None, max_examples=200)
@given(value=st.text(alphabet=st.characters(codec="utf-8")))
def test_inserted_values_come_back_verbatim(value):
    result = render_template("[<$Contact.FirstName$>]", {"Contact": {"FirstName": value}})
    assert result.text == f"[{value}]"
    assert result.missing == ()


@settings(database=None, max_examples=200)
@given(text=st.text(alphabet="<$>.ContactAgeIrsFN _-x"))
def test_parsing_either_succeeds_or_points_at_an_opening(text):
    try:
        template = parse_template(text)
    except FieldCodeSyntaxError as exc:
        assert text[exc.position : exc.position + 2] == "<$"
    else:
        literals = [part for part in template if isinstance(part, str)]
        assert not any("<$" in literal for literal in literals)
        assert len(template) - len(literals) == text.count("<$")
