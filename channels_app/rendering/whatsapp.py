"""WhatsApp standard responses: each content type's validator, then its renderer.

Pure: no Django, no database. Implements `whatsapp-guide.txt`: notifications
(a template, its `{{k}}` parameters), rich media notifications (header, footer,
quick reply or call-to-action buttons, dynamic URLs) and interactive messages
(reply buttons, lists), in the shapes of API.md "Structured content of a
standard response"; the payloads are documented in `docs/PAYLOADS.md`. `text`,
the plain message, lives here too: every network sends it the same way.

A validator checks the stored template and returns the cleaned structured
content; the renderer next to it fills that content's field codes and re-checks
the limits on the result, so the two must agree on one shape.
"""

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from channels_app.rendering.field_codes import _PLACEHOLDER_RE, _compile, _fill
from channels_app.rendering.limits import (
    BODY_MAX,
    BUTTON_TITLE_MAX,
    CALL_TO_ACTION_MAX,
    FOOTER_MAX,
    HEADER_TEXT_MAX,
    LIST_ROW_DESCRIPTION_MAX,
    LIST_ROW_ID_MAX,
    LIST_ROWS_MAX,
    LIST_SECTION_TITLE_MAX,
    QUICK_REPLIES_MAX,
    REPLY_BUTTON_ID_MAX,
    REPLY_BUTTONS_MAX,
    RICH_MEDIA_BUTTON_TEXT_MAX,
    Render,
    Validator,
    _attachment,
    _clean,
    _Errors,
    _is_web_url,
    _items,
    _mapping,
    _Renderer,
    _text,
    _unique_ids,
)

_MEDIA_TYPES = ("image", "video", "document")
_E164_RE = re.compile(r"\+[1-9][0-9]{6,14}")
_DYNAMIC_URL_SUFFIX = "{{1}}"


# ---- parts shared by several content types ----------------------------------------------------


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


def _render_header(r: _Renderer, header: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if header is None:
        return None
    if header["type"] == "text":
        text = r.text("structured.header.text", header["text"], limit=HEADER_TEXT_MAX, editable=True)
        return {"type": "text", "text": text}
    return {"type": header["type"], "attachment": header["attachment"]}


_TEMPLATE_KEYS = frozenset({"name", "id", "language"})


def _whatsapp_template(errors: _Errors, raw: Any) -> dict[str, Any]:
    field = "structured.template"
    template = _mapping(errors, field, raw, _TEMPLATE_KEYS, required=True) or {}
    return _clean(
        name=_text(errors, f"{field}.name", template.get("name"), required=True, field_codes=False),
        id=_text(errors, f"{field}.id", template.get("id"), required=False, field_codes=False),
        language=_text(errors, f"{field}.language", template.get("language"), required=False, field_codes=False),
    )


def _render_whatsapp_template(r: _Renderer, structured: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    # Parameters have no limit of their own (the body's is checked once they are in it), hence no r.text().
    values, missing = r.values, r.missing
    parameters = [_fill(_compile(text), values, missing) for text in structured["parameters"].values()]
    return {**structured["template"], "parameters": parameters}, tuple(parameters)


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


def _footer(errors: _Errors, raw: Any) -> str | None:
    return _text(errors, "structured.footer", raw, required=False, limit=FOOTER_MAX)


# ---- content types: each validator, then its renderer ------------------------------------------


def _validate_text(errors: _Errors, body: Any, structured: Mapping[str, Any]) -> dict[str, Any]:
    if structured:
        errors.add("structured", "A text standard response has no structured content.")
    # No length limit here: whatsappsession.max-text-message-size is an option, checked by the sender.
    _text(errors, "body", body, required=True)
    return {}


def _render_text(r: _Renderer, body: str, structured: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "Text", "text": r.text("body", body)}


_NOTIFICATION_KEYS = frozenset({"template", "parameters"})


def _validate_notification(errors: _Errors, body: Any, structured: Mapping[str, Any]) -> dict[str, Any]:
    _mapping(errors, "structured", structured, _NOTIFICATION_KEYS, required=True)
    template = _whatsapp_template(errors, structured.get("template"))
    parameters = _parameters(errors, structured.get("parameters"))
    text = _text(errors, "body", body, required=True, limit=BODY_MAX, numbered=True)
    _check_body_parameters(errors, text, parameters)
    return {"template": template, "parameters": parameters}


def _render_notification(r: _Renderer, body: str, structured: Mapping[str, Any]) -> dict[str, Any]:
    template, parameters = _render_whatsapp_template(r, structured)
    text = r.text("body", body, limit=BODY_MAX, parameters=parameters)
    return {"type": "Notification", "text": text, "template": template}


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


def _render_rich_media(r: _Renderer, body: str, structured: Mapping[str, Any]) -> dict[str, Any]:
    template, parameters = _render_whatsapp_template(r, structured)
    header = _render_header(r, structured.get("header"))
    text = r.text("body", body, limit=BODY_MAX, parameters=parameters)
    footer = r.optional("structured.footer", structured.get("footer"), limit=FOOTER_MAX, required=False)
    buttons = [_render_rich_media_button(r, index, b) for index, b in enumerate(structured.get("buttons", ()))]
    return _clean(type="RichMedia", template=template, header=header, text=text, footer=footer, buttons=buttons or None)


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


HANDLERS: dict[str, tuple[Validator, Render]] = {
    "text": (_validate_text, _render_text),
    "notification": (_validate_notification, _render_notification),
    "rich_media": (_validate_rich_media, _render_rich_media),
    "reply_buttons": (_validate_reply_buttons, _render_reply_buttons),
    "list": (_validate_list, _render_list),
}
