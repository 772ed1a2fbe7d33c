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

The package, by part of the specification:

* `field_codes.py`: field codes, parsed, compiled and filled; `normalize_field_values`;
* `limits.py`: the limits as named constants, `ContentError`, the checks every
  content type shares, and `_Renderer`, which re-checks them on the result;
* `whatsapp.py`: text, notification, rich media, reply buttons, list (whatsapp-guide.txt);
* `apple.py`: quick replies, list picker, carousel (Apple Messages for Business);
* here: the registry (content type -> validator and renderer, from each network's
  `HANDLERS`) and the public functions `validate_structured` and `render_payload`.

In each network module a content type's validator and its renderer stand side by
side: the renderer reads the cleaned shape its validator returns.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from channels_app.rendering import apple, whatsapp
from channels_app.rendering.field_codes import (
    FIELD_CODE_OBJECTS,
    FieldCode,
    FieldCodeSyntaxError,
    RenderResult,
    Template,
    _unique,
    normalize_field_values,
    parse_template,
    render_template,
    template_field_codes,
)
from channels_app.rendering.limits import (
    ContentError,
    Render,
    Validator,
    _Errors,
    _Renderer,
    check_editable_parameter,
)

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


@dataclass(frozen=True, slots=True)
class RenderedContent:
    """The content part of the webhook body, and the field codes that had no value."""

    payload: dict[str, Any]
    missing: tuple[str, ...]


# The registry: content type -> (validator, renderer), one network module at a time.
_CONTENT_TYPES: dict[str, tuple[Validator, Render]] = {**whatsapp.HANDLERS, **apple.HANDLERS}
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
