"""The spec's limits of structured content, and the checks every content type shares.

Pure: no Django, no database. The limits are those of `whatsapp-guide.txt`
(notifications, rich media notifications, interactive messages) and of the
Apple Messages for Business equivalents, applied by the network modules
(`whatsapp.py`, `apple.py`). Here: `ContentError` and the collector that raises
it once, the guide's rule for editable parameters, the generic checks (a text
and its length, an object and its keys, a list and its size, an attachment id,
unique ids, a web URL), and `_Renderer`, which fills the texts of one standard
response and re-checks the limits on the result.

Character counts are `len()` of the Python `str` (code points), as WhatsApp counts.
"""

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from channels_app.rendering.field_codes import _OPEN, FieldCodeSyntaxError, _compile, _fill

# whatsapp-guide.txt, "Rich media notifications".
HEADER_TEXT_MAX = 60
BODY_MAX = 1024  # also WhatsApp's limit for a template body and an interactive message body
FOOTER_MAX = 60
QUICK_REPLIES_MAX = 3
# WhatsApp's rule for template buttons (the Genesys guide names only "phone number or
# website URL"): at most two call-to-action buttons, one phone and one URL.
CALL_TO_ACTION_MAX = 2
# API.md's list of the spec's limits gives 20 characters for button text, and
# the guide's 20 for interactive buttons; stricter than WhatsApp's own 25.
RICH_MEDIA_BUTTON_TEXT_MAX = 20

# whatsapp-guide.txt, "Interactive Messages": up to 3 reply buttons, up to 10 list
# options, "each button can contain text of up to 20 characters", at least one button.
REPLY_BUTTONS_MAX = 3
LIST_ROWS_MAX = 10
BUTTON_TITLE_MAX = 20  # reply button titles, the list's button, and list row titles
# WhatsApp's own limits, which the guide does not repeat.
LIST_SECTION_TITLE_MAX = 24
LIST_ROW_DESCRIPTION_MAX = 72
REPLY_BUTTON_ID_MAX = 256
LIST_ROW_ID_MAX = 200

# Apple Messages for Business: a quick reply message holds 2 to 5 items (Apple's
# Messages for Business REST API, "Quick Reply").
ABC_QUICK_REPLIES_MIN = 2
ABC_QUICK_REPLIES_MAX = 5
# The spec and Apple name no maximum for a list picker; ours keeps one message readable.
ABC_LIST_PICKER_ITEMS_MAX = 100
# Genesys calls the carousel content type "generic", after the generic template of
# the messaging platforms, which holds up to 10 elements; we keep that bound.
ABC_CAROUSEL_ITEMS_MAX = 10

_NEW_LINES = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")  # everything str.splitlines() splits on


class ContentError(ValueError):
    """Structured content breaks the spec's rules; `errors` maps each field path to its messages."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors: dict[str, list[str]] = {field: list(messages) for field, messages in errors.items()}
        super().__init__("; ".join(f"{field}: {' '.join(messages)}" for field, messages in self.errors.items()))


def check_editable_parameter(value: str, field: str) -> None:
    """Apply the guide's rule for editable parameters in a header or a button.

    whatsapp-guide.txt, "Rich media notifications", Important: "An editable
    parameter inside the header or button cannot have new line characters, tab
    characters, or more than four consecutive spaces." Raises `ContentError`
    naming `field`; validation applies it to the stored text, rendering to the
    text once field codes are replaced.
    """
    messages = []
    if any(char in _NEW_LINES for char in value):
        messages.append("Must not contain new line characters.")
    if "\t" in value:
        messages.append("Must not contain tab characters.")
    if "     " in value:
        messages.append("Must not contain more than four consecutive spaces.")
    if messages:
        raise ContentError({field: messages})


class _Errors:
    """All errors of one validation or rendering, raised once at the end."""

    __slots__ = ("errors",)

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.errors.setdefault(field, []).append(message)

    def editable(self, value: str, field: str) -> None:
        try:
            check_editable_parameter(value, field)
        except ContentError as exc:
            for name, messages in exc.errors.items():
                self.errors.setdefault(name, []).extend(messages)

    def raise_if_any(self) -> None:
        if self.errors:
            raise ContentError(self.errors)


def _length_message(limit: int, length: int, qualifier: str = "") -> str:
    return f"Ensure this field has no more than {limit} characters{qualifier} (it has {length})."


def _text(
    errors: _Errors,
    field: str,
    value: Any,
    *,
    required: bool,
    limit: int | None = None,
    editable: bool = False,
    field_codes: bool = True,
    numbered: bool = False,
) -> str | None:
    """Check one text of a standard response; None when absent or unusable."""
    if value is None or (isinstance(value, str) and not value):
        if required:
            errors.add(field, "This field is required.")
        return None
    if not isinstance(value, str):
        errors.add(field, "Must be a string.")
        return None
    if required and not value.strip():
        errors.add(field, "This field may not be blank.")
        return None
    length = len(value)
    qualifier = ""
    if field_codes:
        try:
            known = _compile(value, numbered).literal_length
        except FieldCodeSyntaxError as exc:
            errors.add(field, str(exc))
            return None
        if known != length:
            # Values are unknown until rendering, which checks the final length.
            length, qualifier = known, " besides its field codes and parameters"
    elif _OPEN in value:
        errors.add(field, "Field codes are not allowed here.")
    if limit is not None and length > limit:
        errors.add(field, _length_message(limit, length, qualifier))
    if editable:
        errors.editable(value, field)
    return value


def _mapping(errors: _Errors, field: str, raw: Any, allowed: frozenset[str], *, required: bool) -> Mapping | None:
    if raw is None:
        if required:
            errors.add(field, "This field is required.")
        return None
    if not isinstance(raw, Mapping):
        errors.add(field, "Must be an object.")
        return None
    for key in raw:
        if key not in allowed:
            errors.add(f"{field}.{key}", "Unknown field.")
    return raw


def _items(errors: _Errors, field: str, raw: Any, noun: str, *, minimum: int, maximum: int) -> list[Any]:
    if raw is None:
        raw = []
    if not isinstance(raw, list | tuple):
        errors.add(field, "Must be a list.")
        return []
    if len(raw) < minimum:
        errors.add(field, f"Add at least {minimum} {noun}{'s' if minimum > 1 else ''}.")
    elif len(raw) > maximum:
        errors.add(field, f"Ensure this list has no more than {maximum} {noun}s (it has {len(raw)}).")
    return list(raw)


def _attachment(errors: _Errors, field: str, value: Any) -> int | None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        errors.add(field, "Must be the id of an attachment (a positive integer).")
        return None
    return int(value)


def _unique_ids(errors: _Errors, field: str, ids: list[tuple[str, str | None]]) -> None:
    seen: set[str] = set()
    for path, value in ids:
        if value is None:
            continue
        if value in seen:
            errors.add(path, f"Duplicate id {value!r}; ids must be unique in {field}.")
        seen.add(value)


def _clean(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def _is_web_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not any(c.isspace() for c in url)


class _Renderer:
    """Renders the texts of one standard response and re-checks the limits on the result."""

    __slots__ = ("values", "missing", "errors")

    def __init__(self, values: Mapping[Any, Any]) -> None:
        self.values = values
        self.missing: list[str] = []
        self.errors = _Errors()

    def text(
        self,
        field: str,
        template: str,
        *,
        limit: int | None = None,
        required: bool = True,
        editable: bool = False,
        parameters: tuple[str, ...] | None = None,
    ) -> str:
        if parameters is None:
            rendered = _fill(_compile(template), self.values, self.missing)
        else:
            rendered = _fill(_compile(template, True), self.values, self.missing, parameters)
        if limit is not None and len(rendered) > limit:
            self.errors.add(field, _length_message(limit, len(rendered), " once rendered"))
        if required and not rendered.strip():
            self.errors.add(field, "Is empty once its field codes are rendered.")
        if editable:
            self.errors.editable(rendered, field)
        return rendered

    def optional(self, field: str, template: str | None, **checks: Any) -> str | None:
        return None if template is None else self.text(field, template, **checks)


Validator = Callable[[_Errors, Any, Mapping[str, Any]], dict[str, Any]]
"""Checks one content type's body and structured content, adds errors, returns the cleaned structured content."""
Render = Callable[[_Renderer, str, Mapping[str, Any]], dict[str, Any]]
"""Renders one content type's cleaned structured content into the content part of the webhook body."""
