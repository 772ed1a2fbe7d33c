"""The fast path of an audience CSV's rows (a million of them in seconds): a row that keeps every rule is
taken from its CSV values as they are, its Contact and CustomProperties written as the JSON text COPY stores,
without the dictionaries, model objects and phonenumbers' full parse of the general path
(`services.campaigns.audience_validate`). Any row the fast path cannot take whole (a rule broken, a row
wider or narrower than its header, a column given twice) goes the general path, which says why; so the
answers are the general path's, row for row (tests/test_campaign_audience.py proves it with Hypothesis)."""

import json.encoder
from collections.abc import Callable

from channels_app.phones import normalize_client_phone
from channels_app.text_rules import text_rule_broken

CLIENT_ID_MAX = 200  # CampaignRecipient.client_id
SECTIONS = ("Contact", "CustomProperties")

# JSON strings as json.dumps(..., ensure_ascii=False) writes them (the C encoder).
_json_string = json.encoder.encode_basestring

# A row's (client_id, Contact JSON, CustomProperties JSON), or None: the general path decides.
FastRow = Callable[[list], tuple[str, str, str] | None]


def csv_fast_row(header: list[str], required: list[tuple[str, str]], *, business_number: str | None,
                 check_text: bool) -> FastRow | None:
    """A function that takes a CSV row (its values, a list of str) whole, or None when no row of this header can
    be taken whole (no single client_id column, a Contact or CustomProperties column given twice, a required
    field code without its column, a column name that breaks the text rules: every row then goes the general
    path).

    `required`: the (section, name) of the field codes a row must fill. `business_number`: the channel's, when
    client ids must be phone numbers (None: any client id). `check_text`: whether values may break the text
    rules (False when the file holds no NUL: a UTF-8 text read strictly holds no lone surrogate either)."""
    if header.count("client_id") != 1 or (check_text and text_rule_broken("".join(header))):
        return None
    client = header.index("client_id")
    width = len(header)
    columns: dict[tuple[str, str], int] = {}
    contact, custom = [], []
    for index, column in enumerate(header):
        section, _, name = column.partition(".")
        if section in SECTIONS and name:
            if (section, name) in columns:
                return None
            columns[(section, name)] = index
            key = _json_string(name) + ": "
            (contact if section == "Contact" else custom).append((index, key))
    if any(code not in columns for code in required):
        return None
    needed = [columns[code] for code in required]

    def fast_row(values: list) -> tuple[str, str, str] | None:
        if len(values) != width:
            return None
        client_id = values[client].strip()
        if not client_id or len(client_id) > CLIENT_ID_MAX:
            return None
        if check_text and text_rule_broken("".join(values)):
            return None
        if business_number is not None and normalize_client_phone(client_id, business_number) is None:
            return None
        for index in needed:
            if not values[index].strip():
                return None
        contact_json = "{" + ", ".join([key + _json_string(value) for index, key in contact
                                        if (value := values[index].strip())]) + "}"
        custom_json = "{" + ", ".join([key + _json_string(value) for index, key in custom
                                       if (value := values[index].strip())]) + "}"
        return client_id, contact_json, custom_json

    return fast_row
