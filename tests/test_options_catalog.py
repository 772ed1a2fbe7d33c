import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels_app import options_catalog
from channels_app.options_catalog import InvalidOptionValue, validate_option_value

SIZE = options_catalog.get_option("interaction-workspace", "whatsappsession.max-text-message-size")
COUNT = options_catalog.get_option("interaction-workspace", "whatsappsession.transcript-interactions-count")


def test_option_names_are_unique_and_defaults_are_valid():
    names = [option.name for option in options_catalog.OPTIONS]
    assert len(names) == len(set(names))
    for option in options_catalog.OPTIONS:
        assert validate_option_value(option, option.default) == option.default, option.name
        assert option.description and option.valid_values and option.takes_effect


def test_the_spec_option_pages_are_in_the_catalog():
    assert (SIZE.default, SIZE.minimum, SIZE.maximum) == ("4096", 1, 2147483647)
    assert (COUNT.default, COUNT.minimum, COUNT.maximum) == ("1", 1, 1000)
    queue = options_catalog.get_option("interaction-workspace", "intercommunication.whatsappsession.queue")
    assert queue.valid_values == "The name of a valid Interaction Queue script object"
    for name in [
        "whatsappsession.free-msg-timespan", "whatsappsession.default-notification-text",
        "whatsappsession.default-notification-id", "whatsappsession.default-notification-language",
        "whatsappsession.outbound-session-config", "whatsappsession.location-map.browse.query",
        "whatsappsession.location-map.preview.query", "whatsappsession.location-map.preview.height",
        "whatsappsession.location-map.preview.width", "whatsappsession.emojis-business-attribute",
        "session-shutdown-timeout", "inbound-route-by-call", "xml-request-max-size", "transcript-auto-save",
    ]:
        assert options_catalog.find_option_by_name(name) is not None, name


@pytest.mark.parametrize(("raw", "stored"), [("1", "1"), ("1000", "1000"), (" 7 ", "7"), ("+5", "5")])
def test_integer_boundaries_accepted(raw, stored):
    assert validate_option_value(COUNT, raw) == stored


@pytest.mark.parametrize("raw", ["0", "1001", "-1", "1.5", "", "ten"])
def test_integer_outside_range_refused_with_valid_values(raw):
    with pytest.raises(InvalidOptionValue, match="Any integer from 1 to 1000"):
        validate_option_value(COUNT, raw)


@pytest.mark.parametrize(("raw", "stored"), [("True", "true"), ("false", "false"), (True, "true"), ("0", "false")])
def test_booleans(raw, stored):
    option = options_catalog.find_option_by_name("whatsappsession.enable-free-msg-timespan-monitoring")
    assert validate_option_value(option, raw) == stored


def test_outbound_session_config_must_be_a_json_object():
    option = options_catalog.find_option_by_name("whatsappsession.outbound-session-config")
    sample = '{"channels": [{"server-name": "DigitalMessagingServer", "channel-name": "channel-whatsapp-1"}]}'
    assert validate_option_value(option, sample) == sample
    assert option.parse(sample)["channels"][0]["channel-name"] == "channel-whatsapp-1"
    for bad in ["[]", "{", '"text"']:
        with pytest.raises(InvalidOptionValue):
            validate_option_value(option, bad)


def test_queue_key_format():
    option = options_catalog.find_option_by_name("inbound-route-by-call")
    assert validate_option_value(option, "1:session-WA-sendSR") == "1:session-WA-sendSR"
    for bad in ["session-chat", "x:chat", "1:", "1:a b", ",1:session-chat"]:
        with pytest.raises(InvalidOptionValue):
            validate_option_value(option, bad)


def test_pending_response_intervals():
    option = options_catalog.find_option_by_name("whatsappsession.pending-response-to-customer")
    assert validate_option_value(option, "30, 50") == "30,50"
    assert option.parse("30,50") == (30, 50)
    for bad in ["50,30", "0,5", "30"]:
        with pytest.raises(InvalidOptionValue):
            validate_option_value(option, bad)


@given(st.integers())
def test_integer_validation_agrees_with_the_range(number):
    inside = 1 <= number <= 1000
    try:
        stored = validate_option_value(COUNT, str(number))
    except InvalidOptionValue:
        assert not inside
    else:
        assert inside and stored == str(number)


@given(st.text())
def test_validation_never_fails_other_than_refusing(text):
    for option in options_catalog.OPTIONS:
        try:
            stored = validate_option_value(option, text)
        except InvalidOptionValue as error:
            assert option.name in str(error)
        else:
            assert validate_option_value(option, stored) == stored


def _server_code_mentions(name: str) -> list[str]:
    from pathlib import Path

    package = Path(__file__).resolve().parent.parent / "channels_app"
    return [str(path) for path in package.rglob("*.py")
            if "migrations" not in path.parts and "workspace" not in path.parts  # the page's reads: below
            and path.name != "options_catalog.py" and name in path.read_text()]


def test_every_server_option_is_read_by_the_server_and_every_option_read_is_marked_so():
    from channels_app.options_catalog import OPTIONS, ReadBy

    unread = [o.name for o in OPTIONS if o.read_by == ReadBy.SERVER and not _server_code_mentions(o.name)]
    read_but_not_marked = [o.name for o in OPTIONS if o.read_by != ReadBy.SERVER and _server_code_mentions(o.name)]

    assert unread == [], "marked server but read by nothing"
    assert read_but_not_marked == [], "read by the server but marked otherwise"


def test_every_option_the_workspace_reads_is_marked_so_and_no_other():
    from channels_app.options_catalog import OPTIONS, ReadBy
    from channels_app.workspace.options import SHELL_OPTIONS, WINDOW_OPTIONS

    page = set(SHELL_OPTIONS) | set(WINDOW_OPTIONS)
    marked = {o.name for o in OPTIONS if o.read_by == ReadBy.WORKSPACE}

    assert marked - page == set(), "marked workspace but the page does not read it"
    assert {o.name for o in OPTIONS if o.name in page and o.read_by not in (ReadBy.WORKSPACE, ReadBy.SERVER)} == set()
