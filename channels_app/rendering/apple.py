"""Apple Messages for Business standard responses: each content type's validator, then its renderer.

Pure: no Django, no database. Implements the Apple content types of the
specification (quick replies, list picker, and the carousel Genesys calls
"generic"), in the shapes of API.md "Structured content of a standard response";
the payloads are documented in `docs/PAYLOADS.md`. Plain text is `whatsapp.py`'s
`text`, which every network shares.

A validator checks the stored template and returns the cleaned structured
content; the renderer next to it fills that content's field codes and re-checks
the limits on the result, so the two must agree on one shape.
"""

from collections.abc import Mapping
from typing import Any

from channels_app.rendering.limits import (
    ABC_CAROUSEL_ITEMS_MAX,
    ABC_LIST_PICKER_ITEMS_MAX,
    ABC_QUICK_REPLIES_MAX,
    ABC_QUICK_REPLIES_MIN,
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


def _render_abc_quick_replies(r: _Renderer, body: str, structured: Mapping[str, Any]) -> dict[str, Any]:
    text = r.text("body", body)
    items = [
        {"identifier": item["identifier"], "title": r.text(f"structured.items[{index}].title", item["title"])}
        for index, item in enumerate(structured["items"])
    ]
    return {"type": "AbcQuickReplies", "text": text, "items": items}


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


HANDLERS: dict[str, tuple[Validator, Render]] = {
    "abc_quick_replies": (_validate_abc_quick_replies, _render_abc_quick_replies),
    "abc_list_picker": (_validate_abc_list_picker, _render_abc_list_picker),
    "abc_carousel": (_validate_abc_carousel, _render_abc_carousel),
}
