"""Field codes and channel payloads: the one renderer every sender uses.

Pure: no Django, no database. It implements three things of the specification:

* Genesys field codes `<$Object.Property$>` (`../shared/spec/README.md`, and the
  `Contact` / `CustomProperties` example of `dms-invite-to-chat.txt`), parsed once
  and cached, rendered with a plain join;
* the limits of WhatsApp standard responses (`whatsapp-guide.txt`: notifications,
  rich media notifications, interactive messages) and of the Apple Messages for
  Business equivalents, checked on the stored template (`validate_structured`) and
  again on the rendered result (`render_payload`);
* the content part of the webhook body (`API.md`, "Out: the webhook"), documented
  shape by shape in `docs/PAYLOADS.md`.

Character counts are `len()` of the Python `str` (code points), as WhatsApp counts.
"""

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

__all__ = [
    "FIELD_CODE_OBJECTS",
    "CONTENT_TYPES",
    "ContentError",
    "FieldCode",
    "FieldCodeSyntaxError",
    "RenderResult",
    "RenderedContent",
    "Template",
    "check_editable_parameter",
    "normalize_field_values",
    "parse_template",
    "render_payload",
    "render_template",
    "template_field_codes",
    "validate_structured",
]

# =============================================================================
# Field codes
# =============================================================================

FIELD_CODE_OBJECTS: tuple[str, ...] = ("Contact", "Agent", "Interaction", "CustomProperties")

_OPEN = "<$"
_CLOSE = "$>"
_PROPERTY_RE = re.compile(r"[A-Za-z0-9_ ]+")
# The spec lists FullName among the standard Contact and Agent properties; ESP
# requests usually carry only FirstName and LastName, so it is derived from them.
_FULL_NAME_OBJECTS = frozenset({"Contact", "Agent"})


@dataclass(frozen=True, slots=True)
class FieldCode:
    """One field code `<$Object.Property$>` of a template; `str()` gives `Object.Property`."""

    object: str
    property: str

    def __str__(self) -> str:
        return f"{self.object}.{self.property}"


Template = tuple[str | FieldCode, ...]
"""A parsed template: literal strings and field codes, in order."""


class FieldCodeSyntaxError(ValueError):
    """A malformed field code; `position` is the 0-based index of its `<$`."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"Malformed field code at position {position}: {reason}.")
        self.position = position
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RenderResult:
    """A rendered template and the field codes that had no value (`Object.Property`, unique, in order)."""

    text: str
    missing: tuple[str, ...]


def _parse_field_code(inner: str, position: int) -> FieldCode:
    if not inner.strip(" "):
        raise FieldCodeSyntaxError(position, "the field code is empty")
    if _OPEN in inner:
        raise FieldCodeSyntaxError(position, "'<$' has no closing '$>' before the next '<$'")
    obj, dot, prop = inner.partition(".")
    obj = obj.strip(" ")
    prop = prop.strip(" ")
    if not dot:
        raise FieldCodeSyntaxError(
            position, f"{inner!r} has no dot between object and property, as in <$Contact.FirstName$>"
        )
    if obj not in FIELD_CODE_OBJECTS:
        raise FieldCodeSyntaxError(position, f"unknown object {obj!r}; expected one of {', '.join(FIELD_CODE_OBJECTS)}")
    if not prop:
        raise FieldCodeSyntaxError(position, f"the property after '{obj}.' is empty")
    if not _PROPERTY_RE.fullmatch(prop):
        raise FieldCodeSyntaxError(position, f"property {prop!r} may only hold letters, digits, underscores and spaces")
    return FieldCode(obj, prop)


@lru_cache(maxsize=4096)
def parse_template(text: str) -> Template:
    """Split `text` into literal strings and `FieldCode`s (the spec's `<$Object.Property$>`).

    Cached: a standard response is parsed once, however many times it is sent.
    Raises `FieldCodeSyntaxError` for a `<$` without `$>`, a missing dot, an
    unknown object or an empty or ill-formed property.
    """
    start = text.find(_OPEN)
    if start == -1:
        return (text,) if text else ()
    parts: list[str | FieldCode] = []
    literal_from = 0
    while start != -1:
        end = text.find(_CLOSE, start + len(_OPEN))
        if end == -1:
            raise FieldCodeSyntaxError(start, "'<$' has no closing '$>'")
        if start > literal_from:
            parts.append(text[literal_from:start])
        parts.append(_parse_field_code(text[start + len(_OPEN) : end], start))
        literal_from = end + len(_CLOSE)
        start = text.find(_OPEN, literal_from)
    if literal_from < len(text):
        parts.append(text[literal_from:])
    return tuple(parts)


def template_field_codes(text: str) -> list[str]:
    """The field codes of `text` as `Object.Property`, unique, in order of appearance."""
    return list(dict.fromkeys(str(part) for part in parse_template(text) if type(part) is FieldCode))


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is str:
        return value
    try:
        return str(value)
    except Exception:  # a value whose __str__ fails counts as no value: rendering never raises on values
        return None


def _property(section: Mapping[Any, Any], name: str) -> str | None:
    """Exact property name first, then the same name in any case (KVList keys are typed by hand)."""
    value = section.get(name)
    if value is None:
        folded = name.casefold()
        for key, candidate in section.items():
            if candidate is not None and isinstance(key, str) and key.casefold() == folded:
                value = candidate
                break
    return _as_text(value)


def _resolve(values: Mapping[Any, Any], code: FieldCode) -> str | None:
    """The text of one field code, or None when it has no value."""
    try:
        section = values.get(code.object)
        if type(section) is not dict and not isinstance(section, Mapping):
            return None
        value = section.get(code.property)
        if type(value) is str:
            return value
        text = _as_text(value) if value is not None else _property(section, code.property)
        if text is None and code.object in _FULL_NAME_OBJECTS and code.property.casefold() == "fullname":
            names = [_property(section, "FirstName"), _property(section, "LastName")]
            text = " ".join(name for name in names if name) or None
        return text
    except Exception:  # a hostile mapping (broken __eq__, __getitem__) means no value, never a failed render
        return None


_PLACEHOLDER_RE = re.compile(r"\{\{([0-9]+)\}\}")


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A template ready to fill: its literal pieces, with "" where each slot goes, and the slots.

    A slot is a field code or, in WhatsApp template bodies, the number k of a `{{k}}`.
    Filling copies the pieces, puts values at the slots' indexes and joins: the literal
    text is never looked at again.
    """

    text: str
    pieces: tuple[str, ...]
    slots: tuple[tuple[int, FieldCode | int], ...]
    literal_length: int
    only: FieldCode | None  # the field code of a template that is nothing else, the common parameter


@lru_cache(maxsize=4096)
def _compile(text: str, numbered: bool = False) -> _Compiled:
    pieces: list[str] = []
    slots: list[tuple[int, FieldCode | int]] = []
    for part in parse_template(text):
        if type(part) is FieldCode:
            slots.append((len(pieces), part))
            pieces.append("")
        elif numbered and "{{" in part:
            position = 0
            for match in _PLACEHOLDER_RE.finditer(part):
                pieces.append(part[position : match.start()])
                slots.append((len(pieces), int(match.group(1))))
                pieces.append("")
                position = match.end()
            pieces.append(part[position:])
        else:
            pieces.append(part)
    only = slots[0][1] if len(pieces) == 1 and slots and type(slots[0][1]) is FieldCode else None
    return _Compiled(text, tuple(pieces), tuple(slots), sum(map(len, pieces)), only)


def _fill(compiled: _Compiled, values: Mapping[Any, Any], missing: list[str], parameters: tuple[str, ...] = ()) -> str:
    only = compiled.only
    if only is not None:
        text = _resolve(values, only)
        if text is None:
            missing.append(str(only))
            return ""
        return text
    slots = compiled.slots
    if not slots:
        return compiled.text
    out = list(compiled.pieces)
    for index, slot in slots:
        if type(slot) is int:
            if 0 < slot <= len(parameters):
                out[index] = parameters[slot - 1]
        else:
            text = _resolve(values, slot)
            if text is None:
                missing.append(str(slot))
            else:
                out[index] = text
    return "".join(out)


def _unique(names: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names)) if names else ()


def render_template(text: str, values: Any) -> RenderResult:
    """Replace every field code of `text` with its value from `values`.

    `values` maps object names to property mappings, as `normalize_field_values`
    returns them. A field code without value renders as "" and is listed in
    `missing`. Values are converted with `str()` and inserted as they are, never
    parsed again. Raises `FieldCodeSyntaxError` for a malformed template, never
    for values.
    """
    if type(values) is not dict and not isinstance(values, Mapping):
        values = {}
    missing: list[str] = []
    rendered = _fill(_compile(text), values, missing)
    return RenderResult(rendered, _unique(missing))


def _plain_properties(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        return {}
    return {key: value for key, value in raw.items() if isinstance(key, str)}


def _custom_properties(raw: Any) -> dict[str, Any]:
    """Flatten CustomProperties: a plain object, or the ESP KVList of `OtherProperty` {Name, Value} pairs."""
    result: dict[str, Any] = {}

    def add_pairs(entries: Any) -> None:
        for entry in entries if isinstance(entries, list | tuple) else [entries]:
            if not isinstance(entry, Mapping):
                continue
            if "Name" in entry or "Value" in entry:
                name = entry.get("Name")
                if isinstance(name, str) and name:
                    result[name] = entry.get("Value")
            else:
                result.update(_custom_properties(entry))

    if isinstance(raw, list | tuple):
        add_pairs(raw)
    elif isinstance(raw, Mapping):
        for key, value in raw.items():
            if key == "OtherProperty":
                add_pairs(value)
            elif isinstance(key, str):
                result[key] = value
    return result


def normalize_field_values(
    contact: Any = None,
    agent: Any = None,
    custom_properties: Any = None,
    interaction: Any = None,
) -> dict[str, dict[str, Any]]:
    """Build the `values` of `render_template` from the ESP KVLists `Contact`, `Agent`, `CustomProperties`.

    `CustomProperties` may be a plain object or, as in the DMS log of
    `dms-invite-to-chat.txt`, `{"OtherProperty": [{"Name": ..., "Value": ...}, ...]}`
    (or a single `{"OtherProperty": {"Name": ..., "Value": ...}}`). Anything that
    is not a mapping counts as no values.
    """
    return {
        "Contact": _plain_properties(contact),
        "Agent": _plain_properties(agent),
        "Interaction": _plain_properties(interaction),
        "CustomProperties": _custom_properties(custom_properties),
    }


# =============================================================================
# Limits of structured content
# =============================================================================

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

_MEDIA_TYPES = ("image", "video", "document")
_E164_RE = re.compile(r"\+[1-9][0-9]{6,14}")
_DYNAMIC_URL_SUFFIX = "{{1}}"
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


_HEADER_KEYS = frozenset({"type", "text", "attachment"})


def _header(errors: _Errors, raw: Any, *, media: bool) -> dict[str, Any] | None:
    field = "structured.header"
    header = _mapping(errors, field, raw, _HEADER_KEYS, required=False)
    if header is None:
        return None
    kind = header.get("type")
    if kind == "text":
        if "attachment" in header:
            errors.add(f"{field}.attachment", "A text header has no attachment.")
        text = _text(errors, f"{field}.text", header.get("text"), required=True, limit=HEADER_TEXT_MAX, editable=True)
        return _clean(type="text", text=text)
    if media and kind in _MEDIA_TYPES:
        if "text" in header:
            errors.add(f"{field}.text", f"A {kind} header has no text.")
        return _clean(type=kind, attachment=_attachment(errors, f"{field}.attachment", header.get("attachment")))
    allowed = ("text", *_MEDIA_TYPES) if media else ("text",)
    errors.add(f"{field}.type", f"Must be one of {', '.join(allowed)}.")
    return None


_TEMPLATE_KEYS = frozenset({"name", "id", "language"})


def _whatsapp_template(errors: _Errors, raw: Any) -> dict[str, Any]:
    field = "structured.template"
    template = _mapping(errors, field, raw, _TEMPLATE_KEYS, required=True) or {}
    return _clean(
        name=_text(errors, f"{field}.name", template.get("name"), required=True, field_codes=False),
        id=_text(errors, f"{field}.id", template.get("id"), required=False, field_codes=False),
        language=_text(errors, f"{field}.language", template.get("language"), required=False, field_codes=False),
    )


def _parameter_number(key: Any) -> int | None:
    if type(key) is int:
        return key if key >= 1 else None
    if isinstance(key, str) and key.isascii() and key.isdecimal() and not key.startswith("0"):
        return int(key)
    return None


def _parameters(errors: _Errors, raw: Any) -> dict[str, str]:
    """WhatsApp template parameters: `{"1": <field-code template>, ...}`, numbered from 1 without gaps."""
    field = "structured.parameters"
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        errors.add(field, "Must be an object.")
        return {}
    numbered: dict[int, str] = {}
    numbers: list[int] = []
    for key, value in raw.items():
        path = f"{field}.{key}"
        number = _parameter_number(key)
        if number is None:
            errors.add(path, "Parameter names are the numbers 1, 2, ... of the template's {{1}}, {{2}}, ...")
            continue
        numbers.append(number)
        text = _text(errors, path, value, required=True)
        if text is not None:
            numbered[number] = text
    numbers.sort()
    if numbers != list(range(1, len(numbers) + 1)):
        errors.add(field, f"Parameter numbers must run from 1 without gaps (got {', '.join(map(str, numbers))}).")
    return {str(number): numbered[number] for number in sorted(numbered)}


def _check_body_parameters(errors: _Errors, body: str | None, parameters: Mapping[str, str]) -> None:
    if body is None:
        return
    for number in dict.fromkeys(_PLACEHOLDER_RE.findall(body)):
        if str(int(number)) not in parameters:
            errors.add("body", f"{{{{{number}}}}} has no parameter {int(number)} in structured.parameters.")


_BUTTON_KEYS_BY_TYPE = {
    "quick_reply": frozenset({"type", "text"}),
    "phone": frozenset({"type", "text", "phone"}),
    "url": frozenset({"type", "text", "url", "dynamic", "parameter"}),
}
_BUTTON_KEYS = frozenset().union(*_BUTTON_KEYS_BY_TYPE.values())


def _rich_media_buttons(errors: _Errors, raw: Any) -> list[dict[str, Any]]:
    field = "structured.buttons"
    buttons = _items(errors, field, raw, "button", minimum=0, maximum=QUICK_REPLIES_MAX)
    cleaned: list[dict[str, Any]] = []
    kinds: list[str] = []
    for index, raw_button in enumerate(buttons):
        path = f"{field}[{index}]"
        button = _mapping(errors, path, raw_button, _BUTTON_KEYS, required=True)
        if button is None:
            continue
        kind = button.get("type")
        if kind not in ("quick_reply", "phone", "url"):
            errors.add(f"{path}.type", "Must be one of quick_reply, phone, url.")
            continue
        kinds.append(kind)
        for key in button:
            if key in _BUTTON_KEYS and key not in _BUTTON_KEYS_BY_TYPE[kind]:
                errors.add(f"{path}.{key}", f"A {kind} button has no {key}.")
        text = _text(
            errors, f"{path}.text", button.get("text"), required=True, limit=RICH_MEDIA_BUTTON_TEXT_MAX, editable=True
        )
        if kind == "quick_reply":
            cleaned.append(_clean(type=kind, text=text))
        elif kind == "phone":
            phone = _text(errors, f"{path}.phone", button.get("phone"), required=True, field_codes=False)
            if phone is not None and not _E164_RE.fullmatch(phone):
                errors.add(f"{path}.phone", "Must be a phone number in E.164 format, such as +15551234567.")
            cleaned.append(_clean(type=kind, text=text, phone=phone))
        else:
            cleaned.append(_url_button(errors, path, button, text))
    if "quick_reply" in kinds and len(kinds) > kinds.count("quick_reply"):
        errors.add(field, "Quick reply and call-to-action buttons cannot be mixed.")
    elif "quick_reply" not in kinds:
        if len(kinds) > CALL_TO_ACTION_MAX:
            errors.add(
                field,
                f"Ensure this list has no more than {CALL_TO_ACTION_MAX} call-to-action buttons (it has {len(kinds)}).",
            )
        for kind in ("phone", "url"):
            if kinds.count(kind) > 1:
                errors.add(field, f"At most one {kind} button is allowed.")
    return cleaned


def _is_web_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not any(c.isspace() for c in url)


def _url_button(errors: _Errors, path: str, button: Mapping[str, Any], text: str | None) -> dict[str, Any]:
    """A call-to-action URL: static, or dynamic with one parameter `{{1}}` at its end (whatsapp-guide.txt)."""
    dynamic = button.get("dynamic", False)
    if type(dynamic) is not bool:
        errors.add(f"{path}.dynamic", "Must be true or false.")
        dynamic = False
    url = _text(errors, f"{path}.url", button.get("url"), required=True, field_codes=False)
    if url is not None:
        if dynamic:
            base = url.removesuffix(_DYNAMIC_URL_SUFFIX)
            if base == url or "{{" in base:
                errors.add(f"{path}.url", "A dynamic URL has exactly one parameter, {{1}}, at its end.")
        else:
            base = url
            if "{{" in url:
                errors.add(f"{path}.url", "A static URL has no parameter; set dynamic to true.")
        if not _is_web_url(base):
            errors.add(f"{path}.url", "Must be an http or https URL.")
    parameter = None
    if dynamic:
        parameter = _text(errors, f"{path}.parameter", button.get("parameter"), required=True, editable=True)
    elif "parameter" in button:
        errors.add(f"{path}.parameter", "Only a dynamic URL has a parameter.")
    return _clean(type="url", text=text, url=url, dynamic=dynamic, parameter=parameter)


def _footer(errors: _Errors, raw: Any) -> str | None:
    return _text(errors, "structured.footer", raw, required=False, limit=FOOTER_MAX)


# ---- one validator per content type ---------------------------------------------------------


def _validate_text(errors: _Errors, body: Any, structured: Mapping[str, Any]) -> dict[str, Any]:
    if structured:
        errors.add("structured", "A text standard response has no structured content.")
    # No length limit here: whatsappsession.max-text-message-size is an option, checked by the sender.
    _text(errors, "body", body, required=True)
    return {}


_NOTIFICATION_KEYS = frozenset({"template", "parameters"})


def _validate_notification(errors: _Errors, body: Any, structured: Mapping[str, Any]) -> dict[str, Any]:
    _mapping(errors, "structured", structured, _NOTIFICATION_KEYS, required=True)
    template = _whatsapp_template(errors, structured.get("template"))
    parameters = _parameters(errors, structured.get("parameters"))
    text = _text(errors, "body", body, required=True, limit=BODY_MAX, numbered=True)
    _check_body_parameters(errors, text, parameters)
    return {"template": template, "parameters": parameters}


_RICH_MEDIA_KEYS = frozenset({"template", "parameters", "header", "footer", "buttons"})


def _validate_rich_media(errors: _Errors, body: Any, structured: Mapping[str, Any]) -> dict[str, Any]:
    _mapping(errors, "structured", structured, _RICH_MEDIA_KEYS, required=True)
    template = _whatsapp_template(errors, structured.get("template"))
    parameters = _parameters(errors, structured.get("parameters"))
    header = _header(errors, structured.get("header"), media=True)
    text = _text(errors, "body", body, required=True, limit=BODY_MAX, numbered=True)
    _check_body_parameters(errors, text, parameters)
    footer = _footer(errors, structured.get("footer"))
    buttons = _rich_media_buttons(errors, structured.get("buttons"))
    return _clean(template=template, parameters=parameters, header=header, footer=footer, buttons=buttons or None)


_REPLY_BUTTONS_KEYS = frozenset({"header", "footer", "buttons"})
_REPLY_BUTTON_KEYS = frozenset({"id", "title"})


def _validate_reply_buttons(errors: _Errors, body: Any, structured: Mapping[str, Any]) -> dict[str, Any]:
    _mapping(errors, "structured", structured, _REPLY_BUTTONS_KEYS, required=True)
    header = _header(errors, structured.get("header"), media=True)
    _text(errors, "body", body, required=True, limit=BODY_MAX)
    footer = _footer(errors, structured.get("footer"))
    field = "structured.buttons"
    buttons: list[dict[str, Any]] = []
    ids: list[tuple[str, str | None]] = []
    for index, raw in enumerate(
        _items(errors, field, structured.get("buttons"), "button", minimum=1, maximum=REPLY_BUTTONS_MAX)
    ):
        path = f"{field}[{index}]"
        button = _mapping(errors, path, raw, _REPLY_BUTTON_KEYS, required=True)
        if button is None:
            continue
        button_id = _text(
            errors, f"{path}.id", button.get("id"), required=True, limit=REPLY_BUTTON_ID_MAX, field_codes=False
        )
        ids.append((f"{path}.id", button_id))
        title = _text(
            errors, f"{path}.title", button.get("title"), required=True, limit=BUTTON_TITLE_MAX, editable=True
        )
        buttons.append(_clean(id=button_id, title=title))
    _unique_ids(errors, field, ids)
    return _clean(header=header, footer=footer, buttons=buttons)


_LIST_KEYS = frozenset({"header", "footer", "button", "sections"})
_SECTION_KEYS = frozenset({"title", "rows"})
_ROW_KEYS = frozenset({"id", "title", "description"})


def _validate_list(errors: _Errors, body: Any, structured: Mapping[str, Any]) -> dict[str, Any]:
    _mapping(errors, "structured", structured, _LIST_KEYS, required=True)
    # WhatsApp list messages take a text header only.
    header = _header(errors, structured.get("header"), media=False)
    _text(errors, "body", body, required=True, limit=BODY_MAX)
    footer = _footer(errors, structured.get("footer"))
    button = _text(
        errors, "structured.button", structured.get("button"), required=True, limit=BUTTON_TITLE_MAX, editable=True
    )
    field = "structured.sections"
    raw_sections = _items(errors, field, structured.get("sections"), "section", minimum=1, maximum=LIST_ROWS_MAX)
    sections: list[dict[str, Any]] = []
    ids: list[tuple[str, str | None]] = []
    row_count = 0
    for index, raw_section in enumerate(raw_sections):
        path = f"{field}[{index}]"
        section = _mapping(errors, path, raw_section, _SECTION_KEYS, required=True)
        if section is None:
            continue
        # WhatsApp requires a section title once a list has more than one section.
        title = _text(
            errors,
            f"{path}.title",
            section.get("title"),
            required=len(raw_sections) > 1,
            limit=LIST_SECTION_TITLE_MAX,
        )
        rows: list[dict[str, Any]] = []
        raw_rows = _items(errors, f"{path}.rows", section.get("rows"), "row", minimum=1, maximum=LIST_ROWS_MAX)
        row_count += len(raw_rows)
        for row_index, raw_row in enumerate(raw_rows):
            row_path = f"{path}.rows[{row_index}]"
            row = _mapping(errors, row_path, raw_row, _ROW_KEYS, required=True)
            if row is None:
                continue
            row_id = _text(
                errors, f"{row_path}.id", row.get("id"), required=True, limit=LIST_ROW_ID_MAX, field_codes=False
            )
            ids.append((f"{row_path}.id", row_id))
            rows.append(
                _clean(
                    id=row_id,
                    title=_text(
                        errors,
                        f"{row_path}.title",
                        row.get("title"),
                        required=True,
                        limit=BUTTON_TITLE_MAX,
                        editable=True,
                    ),
                    description=_text(
                        errors,
                        f"{row_path}.description",
                        row.get("description"),
                        required=False,
                        limit=LIST_ROW_DESCRIPTION_MAX,
                    ),
                )
            )
        sections.append(_clean(title=title, rows=rows))
    if row_count > LIST_ROWS_MAX:
        errors.add(
            field, f"A list message holds at most {LIST_ROWS_MAX} rows across its sections (it has {row_count})."
        )
    _unique_ids(errors, field, ids)
    return _clean(header=header, footer=footer, button=button, sections=sections)


_ABC_QUICK_REPLIES_KEYS = frozenset({"items"})
_ABC_ITEM_KEYS = frozenset({"identifier", "title"})


def _abc_identifier(
    errors: _Errors, path: str, item: Mapping[str, Any], ids: list[tuple[str, str | None]]
) -> str | None:
    identifier = _text(errors, f"{path}.identifier", item.get("identifier"), required=True, field_codes=False)
    ids.append((f"{path}.identifier", identifier))
    return identifier


def _validate_abc_quick_replies(errors: _Errors, body: Any, structured: Mapping[str, Any]) -> dict[str, Any]:
    _mapping(errors, "structured", structured, _ABC_QUICK_REPLIES_KEYS, required=True)
    # Apple shows the body as the message the customer answers.
    _text(errors, "body", body, required=True)
    field = "structured.items"
    raw_items = _items(
        errors, field, structured.get("items"), "item", minimum=ABC_QUICK_REPLIES_MIN, maximum=ABC_QUICK_REPLIES_MAX
    )
    items: list[dict[str, Any]] = []
    ids: list[tuple[str, str | None]] = []
    for index, raw in enumerate(raw_items):
        path = f"{field}[{index}]"
        item = _mapping(errors, path, raw, _ABC_ITEM_KEYS, required=True)
        if item is None:
            continue
        identifier = _abc_identifier(errors, path, item, ids)
        items.append(
            _clean(identifier=identifier, title=_text(errors, f"{path}.title", item.get("title"), required=True))
        )
    _unique_ids(errors, field, ids)
    return {"items": items}


_ABC_LIST_PICKER_KEYS = frozenset({"title", "subtitle", "sections"})
_ABC_SECTION_KEYS = frozenset({"title", "items"})
_ABC_LIST_ITEM_KEYS = frozenset({"identifier", "title", "subtitle"})


def _validate_abc_list_picker(errors: _Errors, body: Any, structured: Mapping[str, Any]) -> dict[str, Any]:
    _mapping(errors, "structured", structured, _ABC_LIST_PICKER_KEYS, required=True)
    _text(errors, "body", body, required=False)
    title = _text(errors, "structured.title", structured.get("title"), required=True)
    subtitle = _text(errors, "structured.subtitle", structured.get("subtitle"), required=False)
    field = "structured.sections"
    raw_sections = _items(
        errors, field, structured.get("sections"), "section", minimum=1, maximum=ABC_LIST_PICKER_ITEMS_MAX
    )
    sections: list[dict[str, Any]] = []
    ids: list[tuple[str, str | None]] = []
    item_count = 0
    for index, raw_section in enumerate(raw_sections):
        path = f"{field}[{index}]"
        section = _mapping(errors, path, raw_section, _ABC_SECTION_KEYS, required=True)
        if section is None:
            continue
        section_title = _text(errors, f"{path}.title", section.get("title"), required=False)
        raw_items = _items(
            errors, f"{path}.items", section.get("items"), "item", minimum=1, maximum=ABC_LIST_PICKER_ITEMS_MAX
        )
        item_count += len(raw_items)
        items: list[dict[str, Any]] = []
        for item_index, raw_item in enumerate(raw_items):
            item_path = f"{path}.items[{item_index}]"
            item = _mapping(errors, item_path, raw_item, _ABC_LIST_ITEM_KEYS, required=True)
            if item is None:
                continue
            identifier = _abc_identifier(errors, item_path, item, ids)
            items.append(
                _clean(
                    identifier=identifier,
                    title=_text(errors, f"{item_path}.title", item.get("title"), required=True),
                    subtitle=_text(errors, f"{item_path}.subtitle", item.get("subtitle"), required=False),
                )
            )
        sections.append(_clean(title=section_title, items=items))
    if item_count > ABC_LIST_PICKER_ITEMS_MAX:
        errors.add(field, f"A list picker holds at most {ABC_LIST_PICKER_ITEMS_MAX} items (it has {item_count}).")
    _unique_ids(errors, field, ids)
    return _clean(title=title, subtitle=subtitle, sections=sections)


_ABC_CAROUSEL_KEYS = frozenset({"items"})
_ABC_CAROUSEL_ITEM_KEYS = frozenset({"title", "subtitle", "image", "url"})


def _validate_abc_carousel(errors: _Errors, body: Any, structured: Mapping[str, Any]) -> dict[str, Any]:
    _mapping(errors, "structured", structured, _ABC_CAROUSEL_KEYS, required=True)
    _text(errors, "body", body, required=False)
    field = "structured.items"
    raw_items = _items(errors, field, structured.get("items"), "item", minimum=1, maximum=ABC_CAROUSEL_ITEMS_MAX)
    items: list[dict[str, Any]] = []
    for index, raw in enumerate(raw_items):
        path = f"{field}[{index}]"
        item = _mapping(errors, path, raw, _ABC_CAROUSEL_ITEM_KEYS, required=True)
        if item is None:
            continue
        image = None if item.get("image") is None else _attachment(errors, f"{path}.image", item.get("image"))
        url = _text(errors, f"{path}.url", item.get("url"), required=False, field_codes=False)
        if url is not None and not _is_web_url(url):
            errors.add(f"{path}.url", "Must be an http or https URL.")
        items.append(
            _clean(
                title=_text(errors, f"{path}.title", item.get("title"), required=True),
                subtitle=_text(errors, f"{path}.subtitle", item.get("subtitle"), required=False),
                image=image,
                url=url,
            )
        )
    return {"items": items}


# =============================================================================
# Rendering
# =============================================================================


@dataclass(frozen=True, slots=True)
class RenderedContent:
    """The content part of the webhook body, and the field codes that had no value."""

    payload: dict[str, Any]
    missing: tuple[str, ...]


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


def _render_whatsapp_template(r: _Renderer, structured: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    # Parameters have no limit of their own (the body's is checked once they are in it), hence no r.text().
    values, missing = r.values, r.missing
    parameters = [_fill(_compile(text), values, missing) for text in structured["parameters"].values()]
    return {**structured["template"], "parameters": parameters}, tuple(parameters)


def _render_header(r: _Renderer, header: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if header is None:
        return None
    if header["type"] == "text":
        text = r.text("structured.header.text", header["text"], limit=HEADER_TEXT_MAX, editable=True)
        return {"type": "text", "text": text}
    return {"type": header["type"], "attachment": header["attachment"]}


def _render_text(r: _Renderer, body: str, structured: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "Text", "text": r.text("body", body)}


def _render_notification(r: _Renderer, body: str, structured: Mapping[str, Any]) -> dict[str, Any]:
    template, parameters = _render_whatsapp_template(r, structured)
    text = r.text("body", body, limit=BODY_MAX, parameters=parameters)
    return {"type": "Notification", "text": text, "template": template}


def _render_rich_media_button(r: _Renderer, index: int, button: Mapping[str, Any]) -> dict[str, Any]:
    path = f"structured.buttons[{index}]"
    text = r.text(f"{path}.text", button["text"], limit=RICH_MEDIA_BUTTON_TEXT_MAX, editable=True)
    if button["type"] == "quick_reply":
        return {"type": "quick_reply", "text": text}
    if button["type"] == "phone":
        return {"type": "phone", "text": text, "phone": button["phone"]}
    if not button["dynamic"]:
        return {"type": "url", "text": text, "url": button["url"], "dynamic": False}
    parameter = r.text(f"{path}.parameter", button["parameter"], editable=True)
    # The parameter is appended to the URL, so characters with a meaning in URLs are escaped.
    url = button["url"].removesuffix(_DYNAMIC_URL_SUFFIX) + quote(parameter, safe="")
    return {"type": "url", "text": text, "url": url, "dynamic": True, "parameter": parameter}


def _render_rich_media(r: _Renderer, body: str, structured: Mapping[str, Any]) -> dict[str, Any]:
    template, parameters = _render_whatsapp_template(r, structured)
    header = _render_header(r, structured.get("header"))
    text = r.text("body", body, limit=BODY_MAX, parameters=parameters)
    footer = r.optional("structured.footer", structured.get("footer"), limit=FOOTER_MAX, required=False)
    buttons = [_render_rich_media_button(r, index, b) for index, b in enumerate(structured.get("buttons", ()))]
    return _clean(type="RichMedia", template=template, header=header, text=text, footer=footer, buttons=buttons or None)


def _render_reply_buttons(r: _Renderer, body: str, structured: Mapping[str, Any]) -> dict[str, Any]:
    header = _render_header(r, structured.get("header"))
    text = r.text("body", body, limit=BODY_MAX)
    footer = r.optional("structured.footer", structured.get("footer"), limit=FOOTER_MAX, required=False)
    buttons = [
        {
            "id": button["id"],
            "title": r.text(
                f"structured.buttons[{index}].title", button["title"], limit=BUTTON_TITLE_MAX, editable=True
            ),
        }
        for index, button in enumerate(structured["buttons"])
    ]
    return _clean(type="ReplyButtons", header=header, text=text, footer=footer, buttons=buttons)


def _render_list(r: _Renderer, body: str, structured: Mapping[str, Any]) -> dict[str, Any]:
    header = _render_header(r, structured.get("header"))
    text = r.text("body", body, limit=BODY_MAX)
    footer = r.optional("structured.footer", structured.get("footer"), limit=FOOTER_MAX, required=False)
    button = r.text("structured.button", structured["button"], limit=BUTTON_TITLE_MAX, editable=True)
    sections = []
    for index, section in enumerate(structured["sections"]):
        path = f"structured.sections[{index}]"
        rows = []
        for row_index, row in enumerate(section["rows"]):
            row_path = f"{path}.rows[{row_index}]"
            title = r.text(f"{row_path}.title", row["title"], limit=BUTTON_TITLE_MAX, editable=True)
            description = r.optional(
                f"{row_path}.description", row.get("description"), limit=LIST_ROW_DESCRIPTION_MAX, required=False
            )
            rows.append(_clean(id=row["id"], title=title, description=description))
        title = r.optional(
            f"{path}.title",
            section.get("title"),
            limit=LIST_SECTION_TITLE_MAX,
            required=len(structured["sections"]) > 1,
        )
        sections.append(_clean(title=title, rows=rows))
    return _clean(type="List", header=header, text=text, footer=footer, button=button, sections=sections)


def _render_abc_quick_replies(r: _Renderer, body: str, structured: Mapping[str, Any]) -> dict[str, Any]:
    text = r.text("body", body)
    items = [
        {"identifier": item["identifier"], "title": r.text(f"structured.items[{index}].title", item["title"])}
        for index, item in enumerate(structured["items"])
    ]
    return {"type": "AbcQuickReplies", "text": text, "items": items}


def _render_abc_list_picker(r: _Renderer, body: str, structured: Mapping[str, Any]) -> dict[str, Any]:
    text = r.text("body", body, required=False) or None
    sections = []
    for index, section in enumerate(structured["sections"]):
        path = f"structured.sections[{index}]"
        items = [
            _clean(
                identifier=item["identifier"],
                title=r.text(f"{path}.items[{item_index}].title", item["title"]),
                subtitle=r.optional(f"{path}.items[{item_index}].subtitle", item.get("subtitle"), required=False),
            )
            for item_index, item in enumerate(section["items"])
        ]
        sections.append(_clean(title=r.optional(f"{path}.title", section.get("title"), required=False), items=items))
    return _clean(
        type="AbcListPicker",
        text=text,
        title=r.text("structured.title", structured["title"]),
        subtitle=r.optional("structured.subtitle", structured.get("subtitle"), required=False),
        sections=sections,
    )


def _render_abc_carousel(r: _Renderer, body: str, structured: Mapping[str, Any]) -> dict[str, Any]:
    text = r.text("body", body, required=False) or None
    items = []
    for index, item in enumerate(structured["items"]):
        path = f"structured.items[{index}]"
        image = item.get("image")
        items.append(
            _clean(
                title=r.text(f"{path}.title", item["title"]),
                subtitle=r.optional(f"{path}.subtitle", item.get("subtitle"), required=False),
                image=None if image is None else {"attachment": image},
                url=item.get("url"),
            )
        )
    return _clean(type="AbcCarousel", text=text, items=items)


_Validator = Callable[[_Errors, Any, Mapping[str, Any]], dict[str, Any]]
_Render = Callable[[_Renderer, str, Mapping[str, Any]], dict[str, Any]]

_CONTENT_TYPES: dict[str, tuple[_Validator, _Render]] = {
    "text": (_validate_text, _render_text),
    "notification": (_validate_notification, _render_notification),
    "rich_media": (_validate_rich_media, _render_rich_media),
    "reply_buttons": (_validate_reply_buttons, _render_reply_buttons),
    "list": (_validate_list, _render_list),
    "abc_quick_replies": (_validate_abc_quick_replies, _render_abc_quick_replies),
    "abc_list_picker": (_validate_abc_list_picker, _render_abc_list_picker),
    "abc_carousel": (_validate_abc_carousel, _render_abc_carousel),
}
CONTENT_TYPES: tuple[str, ...] = tuple(_CONTENT_TYPES)


def validate_structured(content_type: str, body: str, structured: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check a standard response against the spec's limits; return its cleaned `structured`.

    Implements the limits of whatsapp-guide.txt (notifications, rich media
    notifications, interactive messages) and of the Apple Messages for Business
    equivalents, in the shapes of API.md "Structured content of a standard
    response". Every error is collected, then `ContentError` is raised once,
    keyed by field path (`body`, `structured.header.text`,
    `structured.buttons[0].title`, ...). Lengths count literal characters only;
    field codes and `{{k}}` are checked once rendered (`render_payload`).
    """
    handlers = _CONTENT_TYPES.get(content_type) if isinstance(content_type, str) else None
    if handlers is None:
        raise ContentError({"content_type": [f"Must be one of {', '.join(CONTENT_TYPES)}."]})
    if structured is None:
        structured = {}
    if not isinstance(structured, Mapping):
        raise ContentError({"structured": ["Must be an object."]})
    errors = _Errors()
    cleaned = handlers[0](errors, body, structured)
    errors.raise_if_any()
    return cleaned


_VALIDATED_MAX = 1024
_validated_cache: dict[tuple[str, str, str], dict[str, Any]] = {}
_CACHE_KEY_ENCODER = json.JSONEncoder()


def _validated(content_type: str, body: str, structured: Mapping[str, Any] | None) -> dict[str, Any]:
    """`validate_structured`, remembered per standard response; the result is shared, so never mutated.

    A standard response is sent many times (campaigns, InviteToChat), and validating
    it again each time cost more than rendering it. The key is its JSON text:
    unlike the dict it is hashable, and unlike the values' hash it tells `true`
    from `1`. Only valid content is remembered, and always the result of validating
    the object itself, so two objects with the same text (`{1: ...}` and
    `{"1": ...}`) share a result only when the rules treat them alike. The
    renderers build new payload objects and never share these.
    """
    if type(content_type) is not str or type(body) is not str:
        return validate_structured(content_type, body, structured)
    try:
        key = (content_type, body, _CACHE_KEY_ENCODER.encode(structured))
    except (TypeError, ValueError, RecursionError):  # not JSON (a custom object, a cycle): no cache
        return validate_structured(content_type, body, structured)
    cleaned = _validated_cache.get(key)
    if cleaned is None:
        cleaned = validate_structured(content_type, body, structured)
        if len(_validated_cache) >= _VALIDATED_MAX:
            # Emptying beats LRU bookkeeping here: a deployment has far fewer standard responses.
            _validated_cache.clear()
        _validated_cache[key] = cleaned
    return cleaned


def render_payload(content_type: str, body: str, structured: Mapping[str, Any] | None, values: Any) -> RenderedContent:
    """Render a standard response into the content part of the webhook body.

    Field codes are rendered in the body, header text, footer, button texts,
    dynamic URL parameters, notification parameters and list texts; the limits
    are then checked again on the result, so a value that makes a header longer
    than 60 characters, or puts a tab into a header or button, raises
    `ContentError` naming the field. Values missing for field codes are not an
    error: they render as "" and are listed in `missing`. Attachments appear as
    their ids; the sender adds URLs. Shapes: `docs/PAYLOADS.md`.
    """
    cleaned = _validated(content_type, body, structured)
    renderer = _Renderer(values if type(values) is dict or isinstance(values, Mapping) else {})
    payload = _CONTENT_TYPES[content_type][1](renderer, body or "", cleaned)
    renderer.errors.raise_if_any()
    return RenderedContent(payload, _unique(renderer.missing))
