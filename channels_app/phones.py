"""Phone numbers in E.164, with the phonenumbers library (pure, no database)."""

import phonenumbers


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


def normalize_client_phone(raw: str, business_number: str) -> str | None:
    """A customer's phone number in E.164 for storing on a contact: with `+` or
    a country code as given, else in the business number's country; None
    when it is no possible number."""
    text = (raw or "").strip()
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
