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
