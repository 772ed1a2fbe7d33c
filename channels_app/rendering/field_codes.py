"""Genesys field codes `<$Object.Property$>`: parsed once, compiled, filled with a plain join.

Pure: no Django, no database. Implements the field codes of the specification
(`../shared/spec/README.md`, and the `Contact` / `CustomProperties` example of
`dms-invite-to-chat.txt`), turns the ESP KVLists into the values they are filled
from (`normalize_field_values`), and compiles the `{{k}}` slots of WhatsApp
template bodies (`whatsapp-guide.txt`, "Notifications") so they are filled the
same way.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

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
