"""`POST /esp`: the JSON form of an External Services Protocol request."""

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_app import rights
from channels_app.authentication import TOKEN_CHALLENGE, ExpiringTokenAuthentication, token_caller
from channels_app.errors import PermissionDenied
from channels_app.esp import handlers  # noqa: F401  (registers the ESP methods)
from channels_app.esp.dispatcher import EspContext, EspReply, esp_dispatch, esp_error
from channels_app.lean import json_loads_texts_kept, json_response
from channels_app.models.configuration import CIRCUIT_RULE
from channels_app.options_catalog import CHAT_SERVER
from channels_app.parsing import RawJSONParser
from channels_app.services.options import option_value
from channels_app.text_rules import text_rule_broken_at


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "integer"}]})
class StringOrNumberField(serializers.Field):
    """Documentation only: AppType is "171" or 171."""


ESP_REQUEST = inline_serializer(
    "EspRequest",
    {
        "ReferenceId": serializers.IntegerField(required=False, allow_null=True),
        "AppName": serializers.CharField(required=False),
        "AppType": StringOrNumberField(required=False, help_text="171 (the DMS); not needed with AppName"),
        "Service": serializers.CharField(),
        "Method": serializers.CharField(),
        "Parameters": serializers.DictField(),
        "UserData": serializers.DictField(required=False),
    },
)
ESP_RESPONSE = inline_serializer(
    "EspResponse",
    {
        "ReferenceId": serializers.IntegerField(required=False, allow_null=True),
        "Result": serializers.DictField(required=False),
        "Error": inline_serializer(
            "EspError", {"Code": serializers.IntegerField(), "Message": serializers.CharField()}, required=False
        ),
    },
)


class EspView(APIView):
    authentication_classes = [ExpiringTokenAuthentication]
    rights_name = "esp"
    permission_classes = [IsAuthenticated]  # 401 without a token; use_esp is checked below, answered in ESP's words
    parser_classes = [RawJSONParser]

    @extend_schema(
        request=ESP_REQUEST,
        responses={200: ESP_RESPONSE, 400: ESP_RESPONSE, 404: ESP_RESPONSE, 422: ESP_RESPONSE,
                   500: ESP_RESPONSE, 502: ESP_RESPONSE},
        examples=[OpenApiExample("InviteToChat (the spec's request)", request_only=True, value={
            "ReferenceId": 9, "AppName": "DMS 91", "Service": "ChatService", "Method": "InviteToChat",
            "Parameters": {"_umsChannel": "channel-whatsapp-REAL", "_umsClientId": "15556667777",
                           "StandardResponseId": "000G9aF2PQ3A000K", "TerminateSessionFlag": "false",
                           "Contact": {"FirstName": "John", "LastName": "Smith", "MyFC_BillAmount": "$129.99"}},
            "UserData": {"PhoneNumber": "15556667777", "GCTI_Chat_SubmitAsOutbound": "true"}}),
            OpenApiExample("ValidateContact", request_only=True, value={
            "ReferenceId": 1, "AppName": "DMS 91", "Service": "Messaging", "Method": "ValidateContact",
            "Parameters": {"_umsChannel": "channel-ghub-simulator", "Id": "+1-631-555-1002"}})],
        description=(
            "ChatService.InviteToChat and Messaging.ValidateContact (see API.md).\n\n"
            "InviteToChat on SMS and e-mail channels is an extension of this server (the spec: \"SMS: currently "
            "not supported\"): it is accepted with a plain-text standard response (920 for any other content "
            "type), sent through the channel's webhook like any outbound message. Reply buttons and list "
            "messages on WhatsApp need the customer's 24-hour window to be open (920 otherwise). "
            f"{CIRCUIT_RULE}"
        ),
    )
    def post(self, request):
        """Reached where LeanPathsMiddleware passes the request on (an Accept header other than JSON's, so that
        DRF negotiates as before) or is not installed."""
        reply = esp_answer(request._request, request.user)
        return Response(reply.body, status=reply.http_status)


def esp_post(request):
    """The door's POST, a plain Django view: LeanPathsMiddleware (channels_app/lean.py) calls it past the
    middleware and DRF. The caller is authenticated by its token exactly as EspView's DRF authentication did
    (401 with DRF's words and `WWW-Authenticate: Token`), then needs use_esp (answered in ESP's words)."""
    user, refusal = token_caller(request)
    if refusal is not None:
        return json_response({"detail": str(refusal.detail)}, status=refusal.status_code,
                             headers={"WWW-Authenticate": TOKEN_CHALLENGE})
    request.user = user  # as DRF set it: the audit log's actor (channels_app/audit.py)
    reply = esp_answer(request, request.user)
    return json_response(reply.body, status=reply.http_status)


def esp_answer(request, user) -> EspReply:
    """The reply to an authenticated caller's request (a Django request)."""
    use_esp = rights.rule("esp.post")
    if not use_esp.allows(user):
        missing = ", ".join(use_esp.missing(user))
        return esp_error(None, PermissionDenied.esp_code, f"Permission incorrect: {missing} is needed.",
                         PermissionDenied.http_status)
    body = request.body
    limit = option_value(section=CHAT_SERVER, name="xml-request-max-size")
    if len(body) > limit:
        reply = esp_error(None, 904, f"Request incorrect: {len(body)} bytes exceed xml-request-max-size ({limit}).",
                          400)
    else:
        try:
            payload, texts_kept = json_loads_texts_kept(body)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deeply
            reply = esp_error(None, 904, "Request incorrect: the body is not valid JSON.", 400)
        else:
            if not texts_kept and (found := text_rule_broken_at(payload)):  # channels_app/text_rules.py: it was a 500
                where, broken = found
                reply = esp_error(None, 904, f"{where} incorrect: it holds {broken}.", 400)
            else:
                reply = esp_dispatch(payload, EspContext(
                    trace_id=request.headers.get("X-B3-TraceId", ""), user=user))
    return reply
