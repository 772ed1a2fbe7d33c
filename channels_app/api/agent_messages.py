"""An agent's message, `POST /api/interactions/{id}/messages/`: what the viewset's action answers, and the same
door served past the middleware and DRF (channels_app/lean.py) for the callers of the API that use a token.

The lean door takes a request only when DRF would have taken the token and nothing else into account: a
`Token` Authorization header, no cookie (a browser's session, its CSRF check and its `Vary: Cookie` stay on
DRF's path), a body of `application/json` (DRF's JSON parser; anything else is DRF's 415) and an Accept header
that DRF answers with its JSON renderer. Then it does what DRF did, in DRF's order: the token (401 in DRF's
words), the rights table's rule for the action (403), the interaction and the checks of the service, the body
read only when the service asks for it (a parse error after a 404, as before); errors become bodies through the
API's one exception handler."""

import io

from django.http import HttpRequest
from rest_framework.exceptions import PermissionDenied as DRFPermissionDenied

from channels_app import rights, selectors
from channels_app.api import serializers
from channels_app.api.exceptions import api_exception_handler
from channels_app.api.parsers import JSONParser
from channels_app.authentication import TOKEN_CHALLENGE, token_caller
from channels_app.errors import PermissionDenied
from channels_app.lean import json_loads_strict, json_response
from channels_app.selectors import tenant_ids_for
from channels_app.services.agent_events import json_time
from channels_app.services.agent_messages import agent_message_send
from channels_app.text_rules import text_rule_broken

ALLOW = "POST, OPTIONS"
_parser = JSONParser()


def require(user, action: str) -> None:
    """The rights table's rule for an action decided by what is sent (403 when not allowed)."""
    rule = rights.rule(action)
    if rule is None or not rule.allows(user):
        missing = ", ".join(rule.missing(user)) if rule else action
        raise PermissionDenied(f"You need the permission {missing}.", field=action)


def require_header_attachment_right(user, channel, content: dict) -> None:
    """Replacing the file of a notification's or reply buttons' header needs its permission (rights.py,
    HEADER_ATTACHMENT_RIGHTS); the response is read as it is sent (the kept one: no statement more). What
    cannot be replaced is the service's 400."""
    if content.get("header_attachment") is None:
        return
    response = selectors.standard_response_for_sending(standard_response_id=content["standard_response_id"],
                                                       tenant_id=channel.tenant_id)
    if response is not None and (action := rights.HEADER_ATTACHMENT_RIGHTS.get(response.content_type)):
        require(user, action)


def plain_text(data) -> dict | None:
    """What AgentMessageSerializer validates a body of only a text to (`{"text": "..."}`, the common body),
    read without it: the serializer builds its fields anew for every body, which cost an agent's message more
    than its write. None for any other body (an empty text, other fields, not a string, a text that breaks the
    text rules), which the serializer reads, its errors and all."""
    if type(data) is not dict or len(data) != 1:
        return None
    text = data.get("text")
    if type(text) is not str or not text or text_rule_broken(text):
        return None
    return {"text": text}


def agent_message_data(message, sent_as: str) -> dict:
    """The 202's body: AgentMessageResultSerializer's representation of the message, written out (its fields,
    read through DRF, cost as much as the rest of the answer; tests/test_agent_message_answers.py holds the two
    equal)."""
    return {
        "id": str(message.pk), "direction": str(message.direction), "text": str(message.text),
        "status": str(message.status), "reasons": message.reasons, "payload": message.payload,
        "external_id": str(message.external_id), "trace_id": str(message.trace_id),
        "origin_time": json_time(message.origin_time), "created_at": json_time(message.created_at),
        "sent_at": json_time(message.sent_at), "delivered_at": json_time(message.delivered_at),
        "sent_as": str(sent_as),
    }


def agent_message_answer(*, user, interaction_id: str, content, trace_id: str) -> dict:
    """Send an agent message (the service's rules); the 202's body. `content()` gives the request's body, read
    once the interaction is found."""
    def admit(interaction) -> dict:
        """The checks that need the interaction, in the service's transaction (one read of it)."""
        if interaction.channel.media_type == "whatsapp":
            require(user, "agent.whatsapp")
        data = content()
        if (text := plain_text(data)) is not None:  # no attachments, no standard response: no right to check
            return text
        serializer = serializers.AgentMessageSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        if serializer.validated_data.get("attachments") and interaction.channel.media_type == "whatsapp":
            require(user, "agent.send_files")
        require_header_attachment_right(user, interaction.channel, serializer.validated_data)
        return serializer.validated_data

    sent = agent_message_send(
        tenant_ids=tenant_ids_for(user), interaction_id=interaction_id, admit=admit, trace_id=trace_id, sender=user,
    )
    return agent_message_data(sent.message, sent.sent_as)


def lean_agent_message_takes(request: HttpRequest) -> bool:
    """Whether the lean door answers this request as DRF would (see above); else DRF's path does."""
    meta = request.META
    return (meta.get("HTTP_AUTHORIZATION", "").startswith("Token ") and not meta.get("HTTP_COOKIE")
            and meta.get("CONTENT_TYPE") == "application/json")


def _content(request: HttpRequest):
    """The body as DRF's JSON parser (channels_app/api/parsers.py) read it: {} when empty, its errors."""
    body = request.body
    if not body:
        return {}
    data = json_loads_strict(body)
    if data is None:  # orjson did not read it as json would: the parser itself reads it, errors and all
        return _parser.parse(io.BytesIO(body), "application/json", {})
    _parser.check(data)
    return data


def _error(exc: Exception, request: HttpRequest, headers: dict | None = None):
    response = api_exception_handler(exc, {"view": None, "args": (), "kwargs": {}, "request": request})
    if response is None:
        raise exc
    return json_response(response.data, status=response.status_code, allow=ALLOW,
                         headers={**(headers or {}), **{k: v for k, v in response.items() if k != "Content-Type"}})


def lean_agent_message_post(request: HttpRequest, pk: str):
    """The door's POST past the middleware and DRF (LeanPathsMiddleware)."""
    user, refusal = token_caller(request)
    if refusal is not None:
        return _error(refusal, request, {"WWW-Authenticate": TOKEN_CHALLENGE})
    request.user = user  # as DRF set it: the audit log's actor
    rule = rights.rule("interaction.messages")
    try:
        if rule is None or not rule.allows(user):
            raise DRFPermissionDenied()
        data = agent_message_answer(user=user, interaction_id=pk, content=lambda: _content(request),
                                    trace_id=request.headers.get("X-B3-TraceId", ""))
    except Exception as error:  # DRF's and the API's errors as the handler maps them; any other is raised again
        return _error(error, request)
    return json_response(data, status=202, allow=ALLOW)
