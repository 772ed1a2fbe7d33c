"""The shared parsers, which the interfaces and the services may both import:
the raw body parser of the signed and ESP doors, and the inbound body of the
Third-Party Messaging API, parsed and checked (pure, no database):
`{"messages": [Text | Email | Location | Receipt, ...]}`. A Text message may
carry `attachments` (then its text may be empty); they are only checked for
shape here and fetched later (services/media.py)."""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.utils.dateparse import parse_datetime
from rest_framework.parsers import BaseParser

from channels_app.text_rules import text_rule_broken_at, utf8_bytes_over

MAX_MESSAGES_PER_REQUEST = 100
# channel.messageId, from.id and from.nickname are kept in 200-character columns.
MAX_ID_LENGTH = 200
RECEIPT_STATUSES = ("Delivered", "Removed", "Failed")
MAX_ATTACHMENTS_PER_MESSAGE = 10
MAX_URL_LENGTH = 2000
MAX_LOCATION_TEXT = 1000


class RawJSONParser(BaseParser):
    """Keeps the body as bytes: a signature is checked over the exact bytes, and the size limit and JSON
    errors are the door's own errors (ESP's, the Third-Party Messaging API's), not DRF's."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream.read() if stream is not None else b""


class InvalidStructure(ValueError):
    """Code 520 of the API: "Invalid message structure"; the message names the field."""


@dataclass(frozen=True)
class InboundText:
    channel_message_id: str
    client_id: str
    nickname: str
    business_id: str
    time: datetime | None
    text: str
    extra: dict
    attachments: tuple = ()  # InboundAttachment of services/media.py, as plain tuples (url, type, name, size)


@dataclass(frozen=True)
class InboundReceipt:
    external_id: str
    status: str
    reasons: list


def message_type(message: "InboundText | InboundReceipt") -> str:
    """The Third-Party Messaging type of a parsed message: Text, Email, Location or Receipt."""
    if isinstance(message, InboundReceipt):
        return "Receipt"
    return message.extra.get("type") or ("Email" if "subject" in message.extra else "Text")


def _string(value, field: str, *, required: bool = True, max_length: int | None = None) -> str:
    if value is None or value == "":
        if required:
            raise InvalidStructure(f"{field} is required.")
        return ""
    if not isinstance(value, str):
        raise InvalidStructure(f"{field} must be a string.")
    if max_length is not None and len(value) > max_length:
        raise InvalidStructure(f"{field} is longer than {max_length} characters.")
    return value


def _object(value, field: str, *, required: bool = True) -> dict:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise InvalidStructure(f"{field} must be an object.")
    return value


def _channel_block(message: dict, field: str) -> dict:
    return _object(message.get("channel"), f"{field}.channel")


def _time(value, field: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = parse_datetime(value) if isinstance(value, str) else None
        if parsed is None or parsed.tzinfo is None:
            raise ValueError
        # In UTC: PostgreSQL stores no offset beyond 15:59 (Python takes up to 23:59), and that was a 500.
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidStructure(f"{field} must be an ISO 8601 time with a time zone.") from None


def _sender(message: dict, field: str) -> tuple[str, str, str, datetime | None, str]:
    channel = _channel_block(message, field)
    sender = _object(channel.get("from"), f"{field}.channel.from")
    to = _object(channel.get("to"), f"{field}.channel.to", required=False)
    return (
        _string(channel.get("messageId"), f"{field}.channel.messageId", max_length=MAX_ID_LENGTH),
        _string(sender.get("id"), f"{field}.channel.from.id", max_length=MAX_ID_LENGTH),
        _string(sender.get("nickname"), f"{field}.channel.from.nickname", required=False, max_length=MAX_ID_LENGTH),
        _time(channel.get("time"), f"{field}.channel.time"),
        _string(to.get("id"), f"{field}.channel.to.id", required=False),
    )


def _attachments(value, field: str) -> tuple:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidStructure(f"{field} must be a list.")
    if len(value) > MAX_ATTACHMENTS_PER_MESSAGE:
        raise InvalidStructure(f"{field} holds at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments.")
    parsed = []
    for index, item in enumerate(value):
        item = _object(item, f"{field}[{index}]")
        size = item.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise InvalidStructure(f"{field}[{index}].size must be a number of bytes.")
        parsed.append((
            _string(item.get("url"), f"{field}[{index}].url", max_length=MAX_URL_LENGTH),
            _string(item.get("contentType"), f"{field}[{index}].contentType", required=False, max_length=200),
            _string(item.get("fileName"), f"{field}[{index}].fileName", required=False, max_length=255),
            size,
        ))
    return tuple(parsed)


def _parse_text(message: dict, field: str) -> InboundText:
    message_id, client_id, nickname, time, business_id = _sender(message, field)
    attachments = _attachments(message.get("attachments"), f"{field}.attachments")
    text = _string(message.get("text"), f"{field}.text", required=not attachments)
    return InboundText(message_id, client_id, nickname, business_id, time, text, {}, attachments)


def _coordinate(value, field: str, bound: int) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not -bound <= value <= bound:
        raise InvalidStructure(f"{field} must be a number between -{bound} and {bound}.")
    return value


def parse_location(value, field: str) -> dict:
    """A location `{"latitude", "longitude", "name", "address", "url"}`, checked; optional parts left out."""
    location = _object(value, field)
    cleaned = {
        "latitude": _coordinate(location.get("latitude"), f"{field}.latitude", 90),
        "longitude": _coordinate(location.get("longitude"), f"{field}.longitude", 180),
    }
    for key in ("name", "address", "url"):
        if text := _string(location.get(key), f"{field}.{key}", required=False, max_length=MAX_LOCATION_TEXT):
            cleaned[key] = text
    if "url" in cleaned and not cleaned["url"].lower().startswith(("http://", "https://")):
        raise InvalidStructure(f"{field}.url must be an http(s) URL.")
    return cleaned


def location_text(location: dict) -> str:
    """What the transcript shows of a location as text."""
    return ", ".join(filter(None, [location.get("name"), location.get("address")])) or (
        f"{location['latitude']}, {location['longitude']}"
    )


def _parse_location(message: dict, field: str) -> InboundText:
    message_id, client_id, nickname, time, business_id = _sender(message, field)
    location = parse_location(message.get("location"), f"{field}.location")
    extra = {"type": "Location", "location": location}
    return InboundText(message_id, client_id, nickname, business_id, time, location_text(location), extra)


def _parse_email(message: dict, field: str) -> InboundText:
    message_id, client_id, nickname, time, business_id = _sender(message, field)
    subject = _string(message.get("subject"), f"{field}.subject", required=False)
    content = message.get("content")
    if not isinstance(content, list) or not content:
        raise InvalidStructure(f"{field}.content must be a non-empty list.")
    parts = {}
    for index, part in enumerate(content):
        part = _object(part, f"{field}.content[{index}]")
        kind = _string(part.get("type"), f"{field}.content[{index}].type")
        if kind not in ("text", "html"):
            raise InvalidStructure(f"{field}.content[{index}].type must be text or html.")
        parts[kind] = _string(part.get("text"), f"{field}.content[{index}].text", required=False)
    reply_to = _object(_object(message.get("context"), f"{field}.context", required=False).get("replyTo"),
                       f"{field}.context.replyTo", required=False)
    extra = {"subject": subject, "content": [{"type": k, "text": v} for k, v in parts.items()]}
    if reply_to:
        extra["context"] = {"replyTo": reply_to}
    text = parts.get("text") or parts.get("html", "")
    return InboundText(message_id, client_id, nickname, business_id, time, text, extra)


def _parse_receipt(message: dict, field: str) -> InboundReceipt:
    channel = _channel_block(message, field)
    external_id = _string(channel.get("messageId"), f"{field}.channel.messageId", max_length=MAX_ID_LENGTH)
    status = message.get("status")
    if status not in RECEIPT_STATUSES:
        raise InvalidStructure(f"{field}.status must be one of {', '.join(RECEIPT_STATUSES)}.")
    reasons = message.get("reasons")
    if reasons is None:
        reasons = []
    if not isinstance(reasons, list):  # {} and "" too, which `or []` took for no reasons
        raise InvalidStructure(f"{field}.reasons must be a list.")
    cleaned = []
    for index, reason in enumerate(reasons):
        reason = _object(reason, f"{field}.reasons[{index}]")
        code = reason.get("code")
        if not isinstance(code, int) or isinstance(code, bool):
            raise InvalidStructure(f"{field}.reasons[{index}].code must be an integer.")
        cleaned.append({"code": code, "message": _string(reason.get("message"), "message", required=False)})
    return InboundReceipt(external_id, status, cleaned)


PARSERS = {"Text": _parse_text, "Email": _parse_email, "Location": _parse_location, "Receipt": _parse_receipt}


def _customer_texts(message: dict, field: str):
    """(field, text) of each customer text of a Text or Email message."""
    if message.get("type") == "Text":
        yield f"{field}.text", message.get("text")
    elif message.get("type") == "Email":
        for index, part in enumerate(message.get("content") or []):
            yield f"{field}.content[{index}].text", part.get("text")


def parse_inbound(
    body: object, *, max_text_bytes: int | None = None, texts_kept: bool = False
) -> list[InboundText | InboundReceipt]:
    """The messages of a request, checked; `max_text_bytes` (MAX_INBOUND_TEXT_BYTES) bounds each customer
    text in bytes of UTF-8. `texts_kept`: the caller knows that every text of `body` keeps the text rules
    (lean.json_loads_texts_kept), which are then not checked again."""
    if not isinstance(body, dict):
        raise InvalidStructure("The body must be a JSON object.")
    # channels_app/text_rules.py: a structure error, not a server error
    if not texts_kept and (found := text_rule_broken_at(body)):
        where, broken = found
        raise InvalidStructure(f"{where} holds {broken}.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidStructure("messages must be a non-empty list.")
    if len(messages) > MAX_MESSAGES_PER_REQUEST:
        raise InvalidStructure(f"messages holds at most {MAX_MESSAGES_PER_REQUEST} messages.")
    parsed = []
    for index, message in enumerate(messages):
        field = f"messages[{index}]"
        message = _object(message, field)
        kind = message.get("type")
        parser = PARSERS.get(kind) if isinstance(kind, str) else None  # a dict or list as type was a 500
        if parser is None:
            raise InvalidStructure(f"{field}.type must be one of {', '.join(PARSERS)}.")
        parsed.append(parser(message, field))
        if max_text_bytes is not None:
            for text_field, text in _customer_texts(message, field):
                if isinstance(text, str) and (size := utf8_bytes_over(text, max_text_bytes)):
                    raise InvalidStructure(
                        f"{text_field} is {size} bytes of UTF-8; at most {max_text_bytes} are accepted."
                    )
    return parsed
