"""`POST /nexus/v3/channels/{channel_id}/messages`: the Third-Party Messaging API."""

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_app.lean import json_loads_texts_kept, json_response
from channels_app.messaging.signatures import verify_hub_signature
from channels_app.metrics import count_inbound
from channels_app.parsing import (
    MAX_ATTACHMENTS_PER_MESSAGE,
    MAX_MESSAGES_PER_REQUEST,
    MAX_URL_LENGTH,
    RECEIPT_STATUSES,
    InvalidStructure,
    RawJSONParser,
    message_type,
    parse_inbound,
)
from channels_app.selectors import channel_find
from channels_app.services.channels import channel_inbound_secrets
from channels_app.services.inbound import inbound_messages_accept

INVALID_STRUCTURE = 520

NEXUS_RESPONSE = inline_serializer(
    "NexusResponse",
    {
        "status": inline_serializer(
            "NexusStatus", {"code": serializers.IntegerField(), "message": serializers.CharField(required=False)}
        ),
        "data": inline_serializer(
            "NexusData", {"ids": serializers.ListField(child=serializers.CharField())}, required=False
        ),
    },
)


def _text(**extra) -> dict:
    return {"type": "string", **extra}


def _optional(schema: dict) -> dict:
    return {**schema, "nullable": True}  # parse_inbound takes null (and "") for an absent optional field


_SENDER = {
    "type": "object", "required": ["messageId", "from"],
    "properties": {
        "messageId": _text(minLength=1),
        "from": {"type": "object", "required": ["id"],
                 "properties": {"id": _text(minLength=1), "nickname": _optional(_text())}},
        "to": _optional({"type": "object", "properties": {"id": _optional(_text())}}),
        "time": _optional({"anyOf": [_text(format="date-time"), _text(maxLength=0)]}),
    },
}
# What parse_inbound (channels_app/parsing.py) takes, so that clients, and the fuzzer, can send it.
NEXUS_REQUEST = {
    "type": "object", "required": ["messages"],
    "properties": {"messages": {"type": "array", "minItems": 1, "maxItems": MAX_MESSAGES_PER_REQUEST, "items": {
        "oneOf": [
            {"type": "object", "required": ["type", "channel"], "properties": {
                "type": {"type": "string", "enum": ["Text"]}, "channel": _SENDER, "text": _optional(_text()),
                "attachments": _optional({"type": "array", "maxItems": MAX_ATTACHMENTS_PER_MESSAGE, "items": {
                    "type": "object", "required": ["url"], "properties": {
                        "url": _text(minLength=1, maxLength=MAX_URL_LENGTH),
                        "contentType": _optional(_text(maxLength=200)),
                        "fileName": _optional(_text(maxLength=255)),
                        "size": _optional({"type": "integer", "minimum": 0}),
                    }}}),
            }, "anyOf": [  # a text, or files (then the text may be empty or left out): parse_inbound's rule
                {"required": ["text"], "properties": {"text": _text(minLength=1)}},
                {"required": ["attachments"], "properties": {"attachments": {"type": "array", "minItems": 1}}},
            ]},
            {"type": "object", "required": ["type", "channel", "location"], "properties": {
                "type": {"type": "string", "enum": ["Location"]}, "channel": _SENDER,
                "location": {"type": "object", "required": ["latitude", "longitude"], "properties": {
                    "latitude": {"type": "number", "minimum": -90, "maximum": 90},
                    "longitude": {"type": "number", "minimum": -180, "maximum": 180},
                    "name": _optional(_text(maxLength=1000)), "address": _optional(_text(maxLength=1000)),
                    "url": _optional(_text(pattern="^https?://", maxLength=1000)),
                }},
            }},
            {"type": "object", "required": ["type", "channel", "content"], "properties": {
                "type": {"type": "string", "enum": ["Email"]}, "channel": _SENDER, "subject": _optional(_text()),
                "content": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["type"],
                    "properties": {"type": {"type": "string", "enum": ["text", "html"]}, "text": _optional(_text())},
                }},
                "context": _optional({"type": "object", "properties": {"replyTo": _optional({"type": "object"})}}),
            }},
            {"type": "object", "required": ["type", "channel", "status"], "properties": {
                "type": {"type": "string", "enum": ["Receipt"]},
                "channel": {"type": "object", "required": ["messageId"],
                            "properties": {"messageId": _text(minLength=1)}},
                "status": {"type": "string", "enum": list(RECEIPT_STATUSES)},
                "reasons": _optional({"type": "array", "items": {
                    "type": "object", "required": ["code"],
                    "properties": {"code": {"type": "integer"}, "message": _optional(_text())},
                }}),
            }},
        ],
    }}},
}


def _status(code: int, message: str, http_status: int) -> tuple[dict, int]:
    return {"status": {"code": code, "message": message}}, http_status


def nexus_messages_post(request, channel_id: str):
    """The door's POST, a plain Django view: LeanPathsMiddleware (channels_app/lean.py) calls it past the
    middleware and DRF, which this door does not use (the HMAC signature of the body authenticates it)."""
    data, http_status = nexus_messages_answer(request, channel_id)
    return json_response(data, status=http_status)


def nexus_messages_answer(request, channel_id: str) -> tuple[dict, int]:
    """The answer's body and status to a POST (a Django request)."""
    channel = channel_find(channel_id=channel_id)
    if channel is None:
        return _status(404, f"Unknown channel {channel_id!r}.", 404)
    body = request.body
    # The secret, and during a rotation's grace period the one it replaced (channel_rotate_secret).
    if not any(verify_hub_signature(
        secret=secret,
        body=body,
        sha1_header=request.headers.get("X-Hub-Signature"),
        sha256_header=request.headers.get("X-Hub-Signature-256"),
    ) for secret in channel_inbound_secrets(channel=channel)):
        return _status(401, "Missing or wrong X-Hub-Signature.", 401)
    try:
        payload, texts_kept = json_loads_texts_kept(body)
        messages = parse_inbound(payload, max_text_bytes=settings.MAX_INBOUND_TEXT_BYTES, texts_kept=texts_kept)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:  # RecursionError: nested too deeply
        message = str(error) if isinstance(error, InvalidStructure) else "The body is not valid JSON."
        return _status(INVALID_STRUCTURE, message, 400)
    # A B3 trace id is 16 or 32 hex digits; longer values are cut to the column's 200 characters.
    trace_id = request.headers.get("X-B3-TraceId", "")[:200]
    ids = inbound_messages_accept(channel=channel, messages=messages, trace_id=trace_id)
    count_inbound(channel_id=channel.channel_id, types=[message_type(message) for message in messages])
    return {"status": {"code": 0}, "data": {"ids": ids}}, 200


class NexusMessagesView(APIView):
    authentication_classes = []  # the HMAC signature of the body authenticates the third party
    rights_name = "nexus-messages"
    parser_classes = [RawJSONParser]

    @extend_schema(
        operation_id="nexus_channel_messages",
        parameters=[
            OpenApiParameter("X-Hub-Signature", str, OpenApiParameter.HEADER, description="sha1=<hex HMAC-SHA1>"),
            OpenApiParameter("X-Hub-Signature-256", str, OpenApiParameter.HEADER, description="sha256=<hex>"),
            OpenApiParameter("X-B3-TraceId", str, OpenApiParameter.HEADER),
        ],
        request={"application/json": NEXUS_REQUEST},
        responses={200: NEXUS_RESPONSE, 400: NEXUS_RESPONSE, 401: NEXUS_RESPONSE, 404: NEXUS_RESPONSE},
        description="Customer messages (Text, Email, Location) and receipts from a third-party messaging system. "
        "A Text message may carry `attachments` (its text may then be empty): the answer comes at once and the "
        "files are fetched in the background. A message of an unsupported type fails the whole request (400, "
        "code 520, naming it) and nothing of it is stored.",
    )
    def post(self, request, channel_id: str):
        """Reached where LeanPathsMiddleware passes the request on (an Accept header other than JSON's, so that
        DRF negotiates as before) or is not installed."""
        data, http_status = nexus_messages_answer(request._request, channel_id)
        return Response(data, status=http_status)
