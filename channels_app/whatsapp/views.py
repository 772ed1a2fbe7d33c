"""`GET`/`POST /whatsapp/{channel_id}/webhook`: Meta's WhatsApp Cloud API
webhook (API.md "WhatsApp Cloud API channels").

GET is Meta's verification: 200 with `hub.challenge` when `hub.verify_token`
is the channel's verify token, 403 otherwise. POST is signed with the app
secret (`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`,
compared in constant time; 401 and nothing stored otherwise); its body is
stored as it came and answered 200 at once, and a task processes it
(channels_app/services/whatsapp_cloud.py): one INSERT in the request, so the
answer stays far below Meta's limit however large the webhook."""

import hashlib
import hmac

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.parsers import BaseParser
from rest_framework.views import APIView

from channels_app.choices import Transport
from channels_app.metrics import count_inbound
from channels_app.models import Channel
from channels_app.services.whatsapp_cloud import whatsapp_webhook_store
from channels_app.text_rules import text_rule_broken


class RawBodyParser(BaseParser):
    """Keeps the body as bytes: the signature is over the exact bytes."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream.read() if stream is not None else b""


def signature_valid(*, app_secret: str, body: bytes, header: str | None) -> bool:
    if not app_secret or not header:
        return False
    expected = "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header.strip().encode(), expected.encode())


def _cloud_channel(channel_id: str) -> Channel | None:
    return Channel.objects.filter(channel_id=channel_id, transport=Transport.WHATSAPP_CLOUD).first()


class WhatsAppWebhookView(APIView):
    authentication_classes = []  # Meta's signature (POST) or the verify token (GET) authenticates
    rights_name = "whatsapp-webhook"
    parser_classes = [RawBodyParser]

    @extend_schema(
        operation_id="whatsapp_webhook_verify",
        parameters=[OpenApiParameter("hub.mode", str), OpenApiParameter("hub.verify_token", str),
                    OpenApiParameter("hub.challenge", str)],
        responses={(200, "text/plain"): str, 403: None, 404: None},
        description="Meta's verification of the webhook URL: the challenge when the verify token matches.",
    )
    def get(self, request, channel_id: str):
        channel = _cloud_channel(channel_id)
        if channel is None:
            return HttpResponse("Unknown channel", status=404, content_type="text/plain")
        token = request.query_params.get("hub.verify_token", "")
        if (request.query_params.get("hub.mode") != "subscribe" or not channel.verify_token
                or not hmac.compare_digest(token.encode(), channel.verify_token.encode())):
            return HttpResponse("Forbidden", status=403, content_type="text/plain")
        return HttpResponse(request.query_params.get("hub.challenge", ""), content_type="text/plain")

    @extend_schema(
        operation_id="whatsapp_webhook",
        parameters=[OpenApiParameter("X-Hub-Signature-256", str, OpenApiParameter.HEADER,
                                     description="sha256=<hex HMAC-SHA256 of the raw body, key = app secret>")],
        request={"application/json": {"type": "object"}},
        responses={200: None, 400: None, 401: None, 404: None},
        description="Meta's webhook: messages, statuses and template status updates, processed by a task.",
    )
    def post(self, request, channel_id: str):
        channel = _cloud_channel(channel_id)
        if channel is None:
            return HttpResponse("Unknown channel", status=404, content_type="text/plain")
        body = request.data if isinstance(request.data, bytes) else b""
        if not signature_valid(app_secret=channel.app_secret, body=body,
                               header=request.headers.get("X-Hub-Signature-256")):
            return HttpResponse("Missing or wrong X-Hub-Signature-256", status=401, content_type="text/plain")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return HttpResponse("The body is not UTF-8", status=400, content_type="text/plain")
        if text_rule_broken(text):  # a NUL byte: PostgreSQL cannot keep it (escapes such as \\u0000 can be)
            return HttpResponse("The body holds a NUL character", status=400, content_type="text/plain")
        whatsapp_webhook_store(channel=channel, body=text)
        count_inbound(channel_id=channel.channel_id, types=["WhatsAppWebhook"])
        return HttpResponse("OK", content_type="text/plain")
