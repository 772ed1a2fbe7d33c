"""Phone numbers in E.164, with the phonenumbers library (pure, no database)."""

import re

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE


def parse_international(raw: str) -> phonenumbers.PhoneNumber | None:
    """Parse a number written with its country code, with or without a leading `+`.

    Business numbers are configured the way the hub shows them (`19251112222`),
    so a missing `+` means "the country code is already there". The check is
    "possible" (country code and length), not "valid": the hub's own demo
    number 1-925-111-2222 uses an exchange that numbering plans reserve.
    """
    text = (raw or "").strip()
    if not text:
        return None
    if not text.startswith("+"):
        text = "+" + text
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


def to_e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


ASCII_DIGITS = frozenset("0123456789")


def digits_only(raw: str) -> str:
    """The ASCII digits of a text (other scripts' digits are not E.164)."""
    return "".join(ch for ch in raw if ch in ASCII_DIGITS)


def normalize_for_business(raw: str, business_number: str) -> tuple[str, bool]:
    """Normalize a customer's number as the WhatsApp contacts check does
    (WhatsApp guide, "Recommended phone number formats"): with a leading `+`
    the number carries its country code; without it, the country code of the
    business number is put in front of the digits as they are. Returns the
    E.164 text and whether the number is valid."""
    text = (raw or "").strip()
    digits = digits_only(text)
    if not digits:
        return "", False
    if not text.startswith("+"):
        business = parse_international(business_number)
        if business is None:
            return "", False
        digits = f"{business.country_code}{digits}"
    candidate = "+" + digits
    try:
        number = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException:
        return candidate, False
    return to_e164(number), phonenumbers.is_valid_number(number)


# A number written as E.164 digits: an optional `+`, a first digit that is not 0, 8 to 15 digits in all.
# [0-9], not \\d: other scripts' digits take phonenumbers' full parse.
_E164_DIGITS = re.compile(r"\+?[1-9][0-9]{7,14}")
_COUNTRY_CODES = frozenset(str(code) for code in COUNTRY_CODE_TO_REGION_CODE)
# The country calling code each three first digits begin with (phonenumbers takes the shortest that is one).
_CODE_OF_PREFIX = {
    prefix: next((prefix[:size] for size in (1, 2, 3) if prefix[:size] in _COUNTRY_CODES), None)
    for prefix in (str(number) for number in range(100, 1000))
}
_COUNTRY_RULES: dict[str, tuple[frozenset[int], re.Pattern | None] | None] = {}


def _country_rules(code: str) -> tuple[frozenset[int], re.Pattern | None] | None:
    """For a country calling code: the lengths of a possible national number (phonenumbers' metadata, local-only
    lengths included, as `is_possible_number` takes them) and the pattern of a national prefix its parse would
    strip; None when the metadata is missing. Read once per code."""
    if code not in _COUNTRY_RULES:
        calling_code = int(code)
        region = phonenumbers.region_code_for_country_code(calling_code)
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(calling_code, region)
        if metadata is None:
            _COUNTRY_RULES[code] = None
        else:
            general = metadata.general_desc
            lengths = frozenset(length for length in (*general.possible_length, *general.possible_length_local_only)
                                if length > 0)
            prefix = metadata.national_prefix_for_parsing
            _COUNTRY_RULES[code] = (lengths, re.compile(prefix) if prefix else None)
    return _COUNTRY_RULES[code]


def possible_international_digits(digits: str) -> bool | None:
    """Whether `digits` (ASCII digits, the first not 0, 8 to 15 of them), read after a `+`, is a possible
    number, as `parse_international` decides, without its full parse: the country calling code is the shortest
    prefix that is one (phonenumbers' own rule) and the rest has a possible length for it. None when only the
    full parse can tell: the rest starts with 0 (a leading zero is kept apart) or with what the country's
    parse would strip as a national prefix."""
    code = _CODE_OF_PREFIX[digits[:3]]
    if code is None:
        return False  # no country calling code: phonenumbers' parse refuses it too
    rules = _country_rules(code)
    national = digits[len(code):]
    if rules is None or national.startswith("0"):
        return None
    lengths, national_prefix = rules
    if national_prefix is not None and national_prefix.match(national):
        return None
    return len(national) in lengths


def normalize_client_phone(raw: str, business_number: str) -> str | None:
    """A customer's phone number in E.164 for storing on a contact: with `+` or
    a country code as given, else in the business number's country; None
    when it is no possible number. A number already written as E.164 digits
    is decided without phonenumbers' full parse where its metadata suffices
    (`possible_international_digits`), with the same answer."""
    text = (raw or "").strip()
    if _E164_DIGITS.fullmatch(text):
        digits = text[1:] if text[0] == "+" else text
        possible = possible_international_digits(digits)
        if possible:
            return "+" + digits
        if possible is False and text[0] == "+":
            return None  # with a `+`, no national reading is tried
    return _normalize_client_phone_parsed(text, business_number)


def _normalize_client_phone_parsed(text: str, business_number: str) -> str | None:
    """normalize_client_phone with phonenumbers' full parse (`text` stripped)."""
    number = parse_international(text)
    if number is None and not text.startswith("+"):
        business = parse_international(business_number)
        if business is not None:
            try:
                local = phonenumbers.parse(digits_only(text), phonenumbers.region_code_for_number(business))
            except phonenumbers.NumberParseException:
                local = None
            if local is not None and phonenumbers.is_possible_number(local):
                number = local
    return to_e164(number) if number is not None else None
