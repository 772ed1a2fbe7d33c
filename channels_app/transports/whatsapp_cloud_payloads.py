"""Meta's webhook bodies (pure, no database): what a WhatsApp Cloud API
webhook carries, as plain values. Meta's shapes live with the Cloud
transport, as every other network's do, so that the services reading them
(services/whatsapp_cloud.py, services/templates.py) depend on a transport,
never on the webhook's door (channels_app/whatsapp/).

```
{"object": "whatsapp_business_account", "entry": [{"id": "<WABA id>", "changes": [
  {"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {...},
     "contacts": [{"profile": {"name": ...}, "wa_id": ...}],
     "messages": [{"from", "id", "timestamp", "type", <type>: {...}, "context": {"from", "id"}}],
     "statuses": [{"id", "status", "timestamp", "recipient_id", "errors": [...]}]}},
  {"field": "message_template_status_update", "value": {"event", "message_template_id",
     "message_template_name", "message_template_language", "reason"}}]}]}
```

Anything not understood is skipped, never an exception: a webhook is
processed as far as it can be. A message of a type we do not know is kept as
`unsupported` with its raw object."""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from channels_app.parsing import InvalidStructure, parse_location
from channels_app.text_rules import escaped, text_rule_broken_at

MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
STATUSES = ("sent", "delivered", "read", "failed")


@dataclass(frozen=True)
class CloudMessage:
    """A customer message: `text` is what an agent reads; `extra` goes into the stored payload."""

    wamid: str
    client_id: str
    nickname: str
    time: datetime | None
    kind: str
    text: str
    extra: dict = field(default_factory=dict)
    media: dict | None = None  # {"id", "mime_type", "sha256", "filename"} of a media message
    context_id: str = ""  # the wamid of the message it answers


@dataclass(frozen=True)
class CloudStatus:
    wamid: str
    status: str
    reasons: list = field(default_factory=list)


@dataclass(frozen=True)
class TemplateUpdate:
    event: str
    template_id: str
    name: str
    language: str
    reason: str


def _time(value) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _str(value) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _clean(value):
    """A value from outside with what the text rules refuse written as escapes (it is stored, not refused:
    Meta does not send a webhook twice because we did not like it)."""
    if text_rule_broken_at(value) is None:
        return value
    if isinstance(value, str):
        return escaped(value)
    if isinstance(value, dict):
        return {_clean(key): _clean(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value


def _location(content: dict) -> dict | None:
    """A location under /nexus's rules (parsing.parse_location: coordinates in range, texts within their
    limits, a url only http(s)). Meta cannot be refused one message, so a url of another scheme is left out
    and the place kept; a location still refused (coordinates out of range) is None: unsupported."""
    try:
        return parse_location(content, "location")
    except InvalidStructure:
        pass
    try:
        return parse_location({key: value for key, value in content.items() if key != "url"}, "location")
    except InvalidStructure:
        return None


def _message(raw: dict, nicknames: dict[str, str]) -> CloudMessage | None:
    wamid, client_id = _str(raw.get("id")), _str(raw.get("from"))
    if not wamid or not client_id:
        return None
    kind = _str(raw.get("type"))
    content = raw.get(kind) if isinstance(raw.get(kind), dict) else {}
    context = raw.get("context") if isinstance(raw.get("context"), dict) else {}
    common = {"wamid": wamid, "client_id": client_id, "nickname": nicknames.get(client_id, ""),
              "time": _time(raw.get("timestamp")), "kind": kind, "context_id": _str(context.get("id"))}
    whatsapp = {"type": kind}
    if kind == "text":
        return CloudMessage(**common, text=_str(content.get("body")), extra={"whatsapp": whatsapp})
    if kind in MEDIA_TYPES and content.get("id"):
        media = {key: _str(content.get(key)) for key in ("id", "mime_type", "sha256", "filename")}
        whatsapp["media"] = media
        return CloudMessage(**common, text=_str(content.get("caption")), extra={"whatsapp": whatsapp}, media=media)
    if kind == "location" and (location := _location(content)) is not None:
        return CloudMessage(**common, text="", extra={"type": "Location", "location": location,
                                                      "whatsapp": whatsapp})
    if kind == "interactive":
        reply_kind = _str(content.get("type"))
        reply = content.get(reply_kind) if isinstance(content.get(reply_kind), dict) else {}
        if reply_kind in ("button_reply", "list_reply"):
            chosen = {key: _str(reply[key]) for key in ("id", "title", "description") if key in reply}
            return CloudMessage(**common, text=chosen.get("title", ""),
                                extra={"reply": {"type": reply_kind, **chosen}, "whatsapp": whatsapp})
    if kind == "button":  # a quick reply button of a template
        chosen = {"payload": _str(content.get("payload")), "text": _str(content.get("text"))}
        return CloudMessage(**common, text=chosen["text"], extra={"reply": {"type": "button", **chosen},
                                                                  "whatsapp": whatsapp})
    return CloudMessage(**common, text="", extra={"type": "Unsupported", "whatsapp": {"type": kind, "raw": raw}})


def _status(raw: dict) -> CloudStatus | None:
    wamid, status = _str(raw.get("id")), _str(raw.get("status"))
    if not wamid or status not in STATUSES:
        return None
    reasons = []
    for error in raw.get("errors") or ():
        if not isinstance(error, dict):
            continue
        details = (error.get("error_data") or {}).get("details") if isinstance(error.get("error_data"), dict) else ""
        text = _str(error.get("message") or error.get("title"))
        reasons.append({"code": error.get("code") if isinstance(error.get("code"), int) else 500,
                        "message": f"{text}: {details}" if details else text})
    return CloudStatus(wamid, status, reasons)


def parse_webhook(body: dict) -> tuple[list[CloudMessage], list[CloudStatus], list[TemplateUpdate]]:
    """Every customer message, status and template update of a webhook body, in order."""
    messages, statuses, templates = [], [], []
    body = _clean(body) if isinstance(body, dict) else {}
    for entry in body.get("entry") or ():
        if not isinstance(entry, dict):
            continue
        for change in entry.get("changes") or ():
            if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                continue
            value = change["value"]
            if change.get("field") == "message_template_status_update":
                templates.append(TemplateUpdate(
                    event=_str(value.get("event")).upper(), template_id=_str(value.get("message_template_id")),
                    name=_str(value.get("message_template_name")),
                    language=_str(value.get("message_template_language")), reason=_str(value.get("reason")),
                ))
                continue
            if change.get("field") != "messages":
                continue
            nicknames = {
                _str(contact.get("wa_id")): _str((contact.get("profile") or {}).get("name"))
                for contact in value.get("contacts") or () if isinstance(contact, dict)
                and isinstance(contact.get("profile") or {}, dict)
            }
            for raw in value.get("messages") or ():
                if isinstance(raw, dict) and (message := _message(raw, nicknames)):
                    messages.append(message)
            for raw in value.get("statuses") or ():
                if isinstance(raw, dict) and (status := _status(raw)):
                    statuses.append(status)
    return messages, statuses, templates
