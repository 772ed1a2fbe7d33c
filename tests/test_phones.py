"""Phone numbers: the WhatsApp guide's "Recommended phone number formats for
WhatsApp" table, as `channels_app.phones` translates it and as
`Messaging.ValidateContact` answers it through `POST /esp`."""

import re

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from channels_app import phones
from channels_app.choices import MediaType, Transport
from channels_app.phones import normalize_for_business
from channels_app.services import contacts
from tests.factories import ChannelFactory

# "assuming the WhatsApp Business On-Premises API client is registered with an Indian phone number"
INDIAN_BUSINESS = "919876543210"
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")

# (phone number, translated phone number, valid for our server). The spec's table says row 2 is not
# valid: there, WhatsApp's contacts endpoint found no WhatsApp user at +916315551002. We have no
# WhatsApp lookup, only the numbering plan (API.md: valid "once normalized"), and +91 63155 51002 is a
# well-formed Indian mobile number, so our server answers it as valid. A deliberate deviation.
SPEC_TABLE = [
    ("+1-631-555-1002", "+16315551002", True),
    ("6315551002", "+916315551002", True),  # the spec: not valid (no WhatsApp user); see above
    ("1-631-555-1002", "+9116315551002", False),
    ("+1 (516) 283-7151", "+15162837151", True),
    ("+54 9 11 5612-1008", "+5491156121008", True),
]


# --- the pure function ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "translated", "valid"), SPEC_TABLE, ids=[row[0] for row in SPEC_TABLE])
def test_the_spec_table_translates_with_the_business_country(raw, translated, valid):
    assert normalize_for_business(raw, INDIAN_BUSINESS) == (translated, valid)


def test_without_a_plus_the_business_number_decides_the_country():
    assert normalize_for_business("6315551002", "19251112222") == ("+16315551002", True)
    assert normalize_for_business("6315551002", "+919876543210") == ("+916315551002", True)


@pytest.mark.parametrize("raw", ["", "   ", "+", "abc", "()-", "+-"])
def test_text_without_digits_is_not_valid(raw):
    assert normalize_for_business(raw, INDIAN_BUSINESS) == ("", False)


def test_without_a_plus_and_without_a_usable_business_number_nothing_is_valid():
    assert normalize_for_business("6315551002", "")[1] is False
    assert normalize_for_business("6315551002", "not a number")[1] is False


def test_with_a_plus_the_business_number_does_not_matter():
    assert normalize_for_business("+1 (516) 283-7151", "") == ("+15162837151", True)


@pytest.mark.parametrize("raw", ["+1555", "+999 1234 5678", "+" + "9" * 20])
def test_impossible_numbers_are_not_valid(raw):
    assert normalize_for_business(raw, INDIAN_BUSINESS)[1] is False


@pytest.mark.parametrize("raw", ["٦٣١٥٥٥١٠٠٢", "+١٦٣١٥٥٥١٠٠٢"], ids=["arabic-indic-local", "arabic-indic-plus"])
def test_a_valid_answer_is_always_ascii_e164(raw):
    normalized, valid = normalize_for_business(raw, INDIAN_BUSINESS)

    assert not valid or E164.match(normalized), normalized


# No per-example deadline: a loaded CI machine must not turn slowness into a failure.
NO_DEADLINE = hypothesis_settings(deadline=None)


@NO_DEADLINE
@given(raw=st.text(), business=st.text(max_size=20))
def test_normalize_for_business_never_raises_on_arbitrary_text(raw, business):
    normalized, valid = normalize_for_business(raw, business)

    assert isinstance(normalized, str)
    assert isinstance(valid, bool)
    assert normalized == "" or normalized.startswith("+")


@NO_DEADLINE
@given(raw=st.text(alphabet="0123456789+-() .", max_size=30))
def test_a_valid_number_written_with_ascii_digits_is_e164(raw):
    normalized, valid = normalize_for_business(raw, INDIAN_BUSINESS)

    if valid:
        assert E164.match(normalized)
        # normalizing the answer again is stable
        assert normalize_for_business(normalized, INDIAN_BUSINESS) == (normalized, True)


@NO_DEADLINE
@given(digits=st.from_regex(r"[0-9]{10}", fullmatch=True))
def test_punctuation_does_not_change_the_translation(digits):
    punctuated = f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"

    assert normalize_for_business(punctuated, INDIAN_BUSINESS) == normalize_for_business(digits, INDIAN_BUSINESS)


@NO_DEADLINE
@given(raw=st.text(), business=st.text(max_size=20))
def test_normalize_client_phone_never_raises_on_arbitrary_text(raw, business):
    result = phones.normalize_client_phone(raw, business)

    assert result is None or result.startswith("+")


# --- the fast path for numbers already written as E.164 digits (audiences of a million rows) ----------------------

COUNTRY_CODES = sorted(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
BUSINESSES = ["19251112222", INDIAN_BUSINESS, ""]


def full_parse(raw: str, business: str) -> str | None:
    """normalize_client_phone as it was: phonenumbers' full parse for every number."""
    return phones._normalize_client_phone_parsed((raw or "").strip(), business)


# Digits as an audience carries them: a country calling code (or a few digits that are none), then a national
# number of any length, often starting with what a national prefix or a leading zero looks like.
DIGITS = "0123456789"
e164_like = st.builds(
    lambda plus, code, national: ("+" if plus else "") + code + national,
    st.booleans(),
    st.one_of(st.sampled_from(COUNTRY_CODES), st.integers(1, 999).map(str)),
    st.one_of(st.text(DIGITS, max_size=14),
              st.builds(str.__add__, st.sampled_from(["0", "1", "8", "9", "011", "11", "180020"]),
                        st.text(DIGITS, min_size=4, max_size=12))),
)


@hypothesis_settings(max_examples=1500, deadline=None)
@given(raw=e164_like, business=st.sampled_from(BUSINESSES))
def test_the_fast_path_answers_as_the_full_parse(raw, business):
    assert phones.normalize_client_phone(raw, business) == full_parse(raw, business)


@hypothesis_settings(max_examples=1500, deadline=None)
@given(digits=st.builds(str.__add__, st.sampled_from("123456789"), st.text(DIGITS, min_size=7, max_size=14))
       | e164_like.map(lambda raw: raw.lstrip("+")).filter(phones._E164_DIGITS.fullmatch))
def test_where_the_fast_path_decides_it_agrees_with_phonenumbers(digits):
    decided = phones.possible_international_digits(digits)
    parsed = phones.parse_international("+" + digits)

    if decided is not None:
        assert decided == (parsed is not None)
    if decided:  # and the number it keeps is phonenumbers' E.164, digit for digit
        assert phones.to_e164(parsed) == "+" + digits


def test_the_fast_path_takes_every_regions_example_numbers():
    # valid numbers of every region and type phonenumbers has an example of, as E.164 digits with and without `+`
    kinds = (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE,
             phonenumbers.PhoneNumberType.TOLL_FREE, phonenumbers.PhoneNumberType.VOIP)
    examples = [phonenumbers.example_number_for_type(region, kind)
                for region in sorted(phonenumbers.SUPPORTED_REGIONS) for kind in kinds]
    numbers = {phones.to_e164(example) for example in examples if example is not None}
    assert len(numbers) > 500
    for e164 in sorted(numbers):
        for raw in (e164, e164[1:]):
            assert phones.normalize_client_phone(raw, "19251112222") == full_parse(raw, "19251112222") == e164, raw


def test_the_fast_path_decides_the_common_numbers_without_the_full_parse(monkeypatch):
    def no_full_parse(*args):
        raise AssertionError("the full parse was used")

    monkeypatch.setattr(phones, "_normalize_client_phone_parsed", no_full_parse)
    # a US, an Indian, a British mobile and a German number, with and without `+`; impossible ones with `+`
    for raw in ("15551234567", "+15551234567", "+919876543210", "447400123456", "+4930123456"):
        assert phones.normalize_client_phone(raw, "19251112222") == "+" + raw.lstrip("+")
    for raw in ("+1555123456", "+99912345678", "+4474001234567890"[:16]):
        assert phones.normalize_client_phone(raw, "19251112222") is None


# --- Messaging.ValidateContact through POST /esp -----------------------------------------------------------------


@pytest.fixture
def indian_channel(tenant):
    return ChannelFactory(
        channel_id="channel-whatsapp-IN",
        name="WhatsApp India",
        tenant=tenant,
        media_type=MediaType.WHATSAPP,
        transport=Transport.SIMULATOR,
        business_id=INDIAN_BUSINESS,
        endpoints=["1:session-chat"],
        inbound_route_by_call="1:session-chat",
    )


def validate_contact(api, contact_id, *, channel_id="channel-whatsapp-IN", reference_id=5):
    parameters = {"Id": contact_id}
    if channel_id is not None:
        parameters["_umsChannel"] = channel_id
    return api.post(
        "/esp",
        {"ReferenceId": reference_id, "AppName": "DMS 91", "Service": "Messaging", "Method": "ValidateContact",
         "Parameters": parameters},
        format="json",
    )


@pytest.mark.django_db
@pytest.mark.parametrize(("raw", "translated", "valid"), SPEC_TABLE, ids=[row[0] for row in SPEC_TABLE])
def test_validate_contact_answers_the_spec_table(agent_api, indian_channel, raw, translated, valid):
    response = validate_contact(agent_api, raw)

    assert response.status_code == 200, response.json()
    assert response.json() == {"ReferenceId": 5, "Result": {"Id": translated if valid else ""}}


@pytest.mark.django_db
def test_validate_contact_on_a_us_channel_uses_the_us_country_code(agent_api, channel):
    response = validate_contact(agent_api, "6315551002", channel_id="channel-whatsapp-REAL")

    assert response.json()["Result"] == {"Id": "+16315551002"}


@pytest.mark.django_db
def test_validate_contact_may_omit_the_channel_when_only_one_is_configured(agent_api, indian_channel):
    response = validate_contact(agent_api, "+1-631-555-1002", channel_id=None)

    assert response.status_code == 200
    assert response.json()["Result"] == {"Id": "+16315551002"}


@pytest.mark.django_db
def test_validate_contact_without_channel_while_two_are_configured_is_904(agent_api, indian_channel, channel):
    response = validate_contact(agent_api, "+1-631-555-1002", channel_id=None)

    assert response.status_code == 400
    assert response.json()["Error"]["Code"] == 904
    assert "_umsChannel" in response.json()["Error"]["Message"]


@pytest.mark.django_db
@pytest.mark.parametrize("parameters", [{}, {"Id": ""}, {"Id": None}], ids=["absent", "empty", "null"])
def test_validate_contact_without_id_is_904(agent_api, indian_channel, parameters):
    response = agent_api.post(
        "/esp",
        {"ReferenceId": 6, "AppType": "171", "Service": "Messaging", "Method": "ValidateContact",
         "Parameters": {"_umsChannel": "channel-whatsapp-IN", **parameters}},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["ReferenceId"] == 6
    assert response.json()["Error"]["Code"] == 904
    assert "Id" in response.json()["Error"]["Message"]


@pytest.mark.django_db
def test_validate_contact_on_an_unknown_channel_is_902(agent_api, indian_channel):
    response = validate_contact(agent_api, "+1-631-555-1002", channel_id="channel-nope")

    assert response.status_code == 404
    assert response.json()["Error"]["Code"] == 902


@pytest.mark.django_db
def test_validate_contact_needs_a_token(anonymous_api, indian_channel):
    assert validate_contact(anonymous_api, "+1-631-555-1002").status_code == 401


@pytest.mark.django_db
def test_validate_contact_results_are_cached_per_channel(agent_api, indian_channel, channel, monkeypatch):
    # given: a spy on the normalization, to see when the server checks a number rather than answering
    # from its cache (the WhatsApp guide: contacts results are cached for seven days)
    checked = []

    def spy(raw, business_number):
        checked.append((raw, business_number))
        return normalize_for_business(raw, business_number)

    monkeypatch.setattr(contacts, "normalize_for_business", spy)

    # when
    first = validate_contact(agent_api, "6315551002")
    second = validate_contact(agent_api, "6315551002")
    other_channel = validate_contact(agent_api, "6315551002", channel_id="channel-whatsapp-REAL")

    # then
    assert first.json()["Result"] == second.json()["Result"] == {"Id": "+916315551002"}
    assert other_channel.json()["Result"] == {"Id": "+16315551002"}  # each channel has its own answers
    assert checked == [("6315551002", INDIAN_BUSINESS), ("6315551002", "19251112222")]


@pytest.mark.django_db
def test_an_invalid_answer_is_cached_too(agent_api, indian_channel, monkeypatch):
    checked = []

    def spy(raw, business_number):
        checked.append(raw)
        return normalize_for_business(raw, business_number)

    monkeypatch.setattr(contacts, "normalize_for_business", spy)

    assert validate_contact(agent_api, "1-631-555-1002").json()["Result"] == {"Id": ""}
    assert validate_contact(agent_api, "1-631-555-1002").json()["Result"] == {"Id": ""}
    assert checked == ["1-631-555-1002"]


@pytest.mark.django_db
def test_a_new_business_number_is_not_answered_from_the_old_numbers_cache(agent_api, indian_channel):
    # given: the answer for the Indian business number is cached
    assert validate_contact(agent_api, "6315551002").json()["Result"] == {"Id": "+916315551002"}

    # when: the channel is re-registered under a US number (saved, as the admin and the API save it)
    indian_channel.business_id = "19251112222"
    indian_channel.save(update_fields=["business_id"])

    # then: the country code now comes from the new number
    assert validate_contact(agent_api, "6315551002").json()["Result"] == {"Id": "+16315551002"}
