"""The OpenAPI document's error responses.

drf-spectacular documents only the success response of an operation; the
errors DRF and `api_exception_handler` answer with (400 naming the fields,
401, 403, 404, 413, 415, 429) are added here, so that clients and the fuzzer
(`bench/fuzz.py`) know every status an operation can answer. A status an
operation documents itself (ESP, nexus) is left as it is.
"""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    field = serializers.CharField(required=False, help_text="The parameter at fault, when there is one.")


# {"<field>": ["message", ...], ...}; nested serializers nest it, lists of them list it.
VALIDATION_ERROR = {
    "type": "object",
    "additionalProperties": {},
    "description": 'Errors by field: {"<field>": ["message"]} ("non_field_errors" for the whole request).',
}


# Tags by the first part of the path (/api/<resource>/...), and the other doors by their path.
TAGS = {
    "auth": "Tokens", "tenants": "Tenants", "channels": "Channels", "options": "Options",
    "business-attributes": "Business attributes", "standard-responses": "Standard responses",
    "standard-response-categories": "Standard responses", "attachments": "Standard responses",
    "emojis": "Standard responses", "interactions": "Interactions", "contacts": "Contacts",
    "campaigns": "Campaigns", "users": "Users", "audit-log": "Audit log",
}
CLOUD_TAG = "WhatsApp Cloud API"
OTHER_TAGS = {"/esp": "ESP", "/nexus/": "Third-Party Messaging", "/healthz": "Operations", "/whatsapp/": CLOUD_TAG}
# Actions of a resource that only WhatsApp Cloud API channels have: listed under their resource and the Cloud tag.
CLOUD_ACTIONS = ("submit", "sync_templates", "rotate_verify_token")

# Summaries of the standard actions; "{one}" and "{many}" are the resource's words.
ACTION_SUMMARIES = {
    "list": "List {many}", "retrieve": "Get one {one}", "create": "Create {a} {one}", "update": "Replace {a} {one}",
    "partial_update": "Change {a} {one}", "destroy": "Delete {a} {one}",
}
ONE = {"standard-response-categories": "standard response category", "options": "option value"}
EXTRA_SUMMARIES = {
    "rotate_secret": "Rotate a channel's secret (the new one is shown once)",
    "rotate_verify_token": "Rotate a Cloud API channel's verify token (the new one is shown once)",
    "render": "Render a standard response with field values",
    "messages": "Send an agent's message in an interaction",
    "recipients": "List a campaign's recipients and their status",
    "add_recipients": "Add recipients to a draft or scheduled campaign",
    "results": "Download a campaign's results (CSV)",
    "results_csv": "Download a campaign's results (CSV)",
    "start": "Start a campaign", "pause": "Pause a running campaign", "resume": "Resume a paused campaign",
    "cancel": "Cancel a campaign",
    "submit": "Submit a standard response to Meta as a WhatsApp template",
    "sync_templates": "Ask Meta now for the status of a channel's WhatsApp templates",
}
OTHER_SUMMARIES = {
    ("/api/auth/token/", "POST"): "Get an API token with a username and password",
    ("/api/auth/token/", "DELETE"): "Revoke the caller's token",
    ("/api/emojis/", "GET"): "List the emojis agents may insert",
    ("/esp", "POST"): "Call an ESP method (InviteToChat, SendMessage, ...)",
    ("/nexus/v3/channels/{channel_id}/messages", "POST"): "Receive customer messages and receipts from a third party",
    ("/whatsapp/{channel_id}/webhook", "GET"): "Answer Meta's verification of the webhook URL (hub.challenge)",
    ("/whatsapp/{channel_id}/webhook", "POST"): "Receive Meta's webhook: customer messages, statuses, templates",
}


class ApiAutoSchema(AutoSchema):
    """Every operation gets a tag per resource and a summary (tests/test_api_docs.py holds them to it);
    an `extend_schema(tags=..., summary=...)` on a view still wins."""

    def get_tags(self):
        tags = super().get_tags()
        if tags and tags[0][:1].isupper():  # named by an extend_schema
            return tags
        path = self.path
        for prefix, tag in OTHER_TAGS.items():
            if path.startswith(prefix):
                return [tag]
        parts = path.removeprefix("/api/").split("/")
        tags = [TAGS.get(parts[0], parts[0].replace("-", " ").capitalize())]
        return [*tags, CLOUD_TAG] if getattr(self.view, "action", None) in CLOUD_ACTIONS else tags

    def get_summary(self):
        summary = super().get_summary()
        if summary:
            return summary
        action = getattr(self.view, "action", None)
        if (self.path, self.method) in OTHER_SUMMARIES:
            return OTHER_SUMMARIES[(self.path, self.method)]
        if action in EXTRA_SUMMARIES:
            return EXTRA_SUMMARIES[action]
        resource = self.path.removeprefix("/api/").split("/")[0]
        many = resource.replace("-", " ")
        one = ONE.get(resource) or (many[:-1] if many.endswith("s") else many)
        if action in ACTION_SUMMARIES:
            return ACTION_SUMMARIES[action].format(one=one, many=many, a="an" if one[0] in "aeiou" else "a")
        return f"{self.method.capitalize()} {many}"

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, body in self._error_responses().items():
            if code not in responses:
                responses[code] = self._get_response_for_code(body, code, direction=direction)
        return responses

    def _error_responses(self) -> dict:
        view, has_body = self.view, self.method in ("POST", "PUT", "PATCH")
        takes_query = bool(self._get_filter_parameters() or self._get_pagination_parameters()
                           or any(getattr(p, "location", "") == "query" for p in self.get_override_parameters()))
        errors = {}
        if has_body or takes_query or self.method == "DELETE":  # a delete may be refused (a tenant with channels)
            errors["400"] = OpenApiResponse(VALIDATION_ERROR, "Invalid input; the body names the fields.")
        if view.get_authenticators():
            errors["401"] = OpenApiResponse(ErrorSerializer, "No token, or a wrong one (or wrong credentials).")
        staff_only = any(not isinstance(p, (AllowAny, IsAuthenticated)) for p in view.get_permissions())
        if staff_only and self.method not in ("GET", "HEAD", "OPTIONS"):
            errors["403"] = OpenApiResponse(ErrorSerializer, "Only staff write configuration.")
        if "{" in self.path or self._get_pagination_parameters():
            errors["404"] = OpenApiResponse(ErrorSerializer, "No such object (or a page past the last).")
        if has_body and "*/*" not in self.map_parsers():
            errors["413"] = OpenApiResponse(ErrorSerializer, "A body over the size limit (not read).")
            errors["415"] = OpenApiResponse(ErrorSerializer, "A body of a media type the operation does not take.")
        if view.get_throttles():
            errors["429"] = OpenApiResponse(ErrorSerializer, "Too many attempts; retry after Retry-After seconds.")
        return errors


EVENT_STREAM_PATH = "/api/agents/me/events/"


def describe_event_stream(result, generator, request, public):
    """drf-spectacular postprocessing hook: the event stream (a plain async view, channels_app/api/events.py)
    in the OpenAPI document."""
    result.setdefault("paths", {})[EVENT_STREAM_PATH] = {"get": {
        "operationId": "agents_me_events",
        "tags": ["Routing"],
        "summary": "The caller's live events (Server-Sent Events)",
        "description": (
            "`text/event-stream` of what concerns the caller: `offer`, `offer_withdrawn`, `message` (in and out, "
            "of interactions assigned to the caller or whose conference they are in), `receipt`, `interaction` "
            "(`change`: assigned, transferred, conference, ended). Each event has an `id`; `data` is the JSON "
            "object of the same name in this API. `Last-Event-ID` (sent by browsers when they reconnect, or "
            "`?last_event_id=`) resumes after that id without losing or repeating an event, also after a "
            "server restart; without it the stream starts with what happens from then on. Served on the same port "
            "as the rest of the API. Needs Workspace - Can use."),
        "parameters": [
            {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "integer", "minimum": 0},
             "description": "The id of the last event received."},
            {"name": "last_event_id", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0},
             "description": "The same, for clients that cannot set headers."},
        ],
        "responses": {
            "200": {"description": "The stream.", "content": {"text/event-stream": {"schema": {"type": "string"},
                    "example": 'id: 42\nevent: offer\ndata: {"id": 7, "interaction": "0001AaBbCcDdEeFf", '
                               '"queue": "1:session-chat", "contact": 3, "preview": "Hello", '
                               '"expires_at": "2024-03-07T10:00:30Z", "kind": "route", "subtype": "", '
                               '"from_agent": null}\n\n'}}},
            "400": {"description": "A `Last-Event-ID` or `last_event_id` that is not an event id (named)."},
            "401": {"description": "No or wrong credentials."},
            "403": {"description": "The caller lacks channels_app.use_workspace."},
            "421": {"description": "Asked of a bare WSGI server (`project.wsgi`), which does not serve the stream."},
        },
        "security": [{"tokenAuth": []}, {"cookieAuth": []}],
    }}
    return result
