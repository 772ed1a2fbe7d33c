"""Meta's WhatsApp Cloud API: `POST {GRAPH_API_BASE}/{phone_number_id}/messages`
with the channel's bearer token (API.md "WhatsApp Cloud API channels").

Our payloads (channels_app/rendering) map to the Cloud API's message types:
Text -> `text`; Notification and RichMedia -> `template` (name, language,
components with the rendered parameters); ReplyButtons and List ->
`interactive` (`button`, `list`); Location -> `location`; an attachment ->
`image`/`video`/`audio`/`document` by `link`. The Cloud API takes one message
a request: a text with attachments is sent as the text, then each attachment;
the text's wamid is the message's external id.

Answers: 2xx -> accepted (wamid); 429, 5xx, no answer and the throughput
errors (130429, 131056 pair rate, 4 and 80007 app/account rate, 131048 spam
rate) -> retry with the channel's backoff (130429, 4, 80007 and 429 are first
tried again in the sending thread, 0.05, 0.1 and 0.2 s later, each in a slot
of the throttle: a campaign keeps its pace instead of queueing one task per
throttled send); 131047 (more than 24 hours since
the customer's last message) -> failed, "outside the 24-hour window"; a token
Meta refuses (401, code 190) -> failed, and the channel is marked as needing
attention: its next sends fail at once, without asking Meta, until the token
is changed; any other 4xx -> failed.

Throughput: each send takes the next slot of the channel's throttle
(`ChannelThrottle`, one `UPDATE ... RETURNING` a send, shared by every worker
and every path: campaigns, InviteToChat, agents, retries) and waits for it, so
a number never sends more than its `throughput_per_second`. Meta's pair rate
(about one message every 6 seconds to the same customer) is not predicted:
131056 is retried with backoff."""

import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections

from channels_app.transports.base import OutgoingMessage, SendOutcome, SendResult
from channels_app.transports.graph_api import GraphAnswer, graph_request

RETRY_CODES = {4, 80007, 130429, 131048, 131056}
# Throughput errors tried again at once in the sending thread, after these waits (seconds); the pair rate
# (131056, one message every few seconds to the same customer) waits for the delivery's own backoff.
INLINE_RETRY_CODES = {4, 80007, 130429}
INLINE_BACKOFF_SECONDS = (0.05, 0.1, 0.2)
OUTSIDE_WINDOW = 131047
TOKEN_REFUSED = 190
CONFIG_CACHE_SECONDS = 2.0  # a changed token or attention mark is seen by every worker within this
MEDIA_KINDS = {"image", "video", "audio", "document", "sticker"}


class UnsupportedContent(ValueError):
    """A payload the Cloud API cannot carry."""


# --- our payload -> the Cloud API's ------------------------------------------------------------------------------


def _media_kind(mime_type: str, declared: str = "") -> str:
    if declared in MEDIA_KINDS:
        return declared
    major = (mime_type or "").split("/")[0]
    return major if major in ("image", "video", "audio") else "document"


def attachment_link(item) -> str:
    """The public link of an attachment object of a payload: its signed `url` when the renderer gave one,
    else one built on PUBLIC_BASE_URL from the stored file."""
    if isinstance(item, dict) and item.get("url"):
        return str(item["url"])
    attachment_id = item.get("attachment") if isinstance(item, dict) else item
    from channels_app.models import Attachment

    attachment = Attachment.objects.filter(pk=attachment_id).first() if attachment_id is not None else None
    base = getattr(settings, "PUBLIC_BASE_URL", "") or ""
    if attachment is None or not base:
        raise UnsupportedContent(f"attachment {attachment_id} has no public link (set PUBLIC_BASE_URL)")
    return base.rstrip("/") + "/" + attachment.file.url.lstrip("/")


def _header(header: dict | None, link=attachment_link) -> dict | None:
    if not header:
        return None
    if header.get("type") == "text":
        return {"type": "text", "text": header.get("text", "")}
    kind = header.get("type", "image")
    return {"type": kind, kind: {"link": link(header)}}


def _template(payload: dict, link) -> dict:
    template = payload.get("template") or {}
    components = []
    header = payload.get("header")
    if header and header.get("type") in ("image", "video", "document"):
        kind = header["type"]
        components.append({"type": "header", "parameters": [{"type": kind, kind: {"link": link(header)}}]})
    parameters = template.get("parameters") or []
    if parameters:
        components.append({"type": "body", "parameters": [{"type": "text", "text": str(p)} for p in parameters]})
    for index, button in enumerate(payload.get("buttons") or ()):
        if button.get("type") == "quick_reply":
            components.append({"type": "button", "sub_type": "quick_reply", "index": str(index),
                               "parameters": [{"type": "payload", "payload": button.get("text", "")}]})
        elif button.get("type") == "url" and button.get("dynamic"):
            components.append({"type": "button", "sub_type": "url", "index": str(index),
                               "parameters": [{"type": "text", "text": str(button.get("parameter", ""))}]})
    body = {"name": template.get("name", ""), "language": {"code": template.get("language") or "en"}}
    if components:
        body["components"] = components
    return {"type": "template", "template": body}


def _interactive(kind: str, payload: dict, action: dict, link) -> dict:
    interactive = {"type": kind, "body": {"text": payload.get("text", "")}, "action": action}
    if header := _header(payload.get("header"), link):
        interactive["header"] = header
    if payload.get("footer"):
        interactive["footer"] = {"text": payload["footer"]}
    return {"type": "interactive", "interactive": interactive}


def _attachment_message(item: dict, link) -> dict:
    kind = _media_kind(item.get("mimeType") or item.get("contentType") or "", item.get("kind", ""))
    media = {"link": link(item)}
    if kind == "document" and (item.get("name") or item.get("fileName")):
        media["filename"] = item.get("name") or item.get("fileName")
    return {"type": kind, kind: media}


def cloud_messages(payload: dict, *, link=attachment_link) -> list[dict]:
    """The Cloud API message objects (without `messaging_product` and `to`) of one of our payloads, in order."""
    kind = payload.get("type")
    attachments = payload.get("attachments") or []
    messages: list[dict] = []
    if kind == "Text":
        if payload.get("text"):
            messages.append({"type": "text", "text": {"body": payload["text"], "preview_url": False}})
    elif kind in ("Notification", "RichMedia"):
        messages.append(_template(payload, link))
    elif kind == "ReplyButtons":
        buttons = [{"type": "reply", "reply": {"id": b["id"], "title": b["title"]}} for b in payload["buttons"]]
        messages.append(_interactive("button", payload, {"buttons": buttons}, link))
    elif kind == "List":
        action = {"button": payload.get("button", ""), "sections": payload.get("sections", [])}
        messages.append(_interactive("list", payload, action, link))
    elif kind == "Location":
        location = payload.get("location") or {}
        messages.append({"type": "location", "location": {
            key: location[key] for key in ("latitude", "longitude", "name", "address") if key in location}})
    else:
        raise UnsupportedContent(f"a {kind} message cannot be sent on the WhatsApp Cloud API")
    messages.extend(_attachment_message(item, link) for item in attachments if isinstance(item, dict))
    if not messages:
        raise UnsupportedContent("the message is empty")
    return messages


def request_body(to: str, message: dict) -> dict:
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to.lstrip("+"), **message}


# --- the answer -> our outcome ----------------------------------------------------------------------------------


def outcome_of(answer: GraphAnswer) -> tuple[SendOutcome, str]:
    """(outcome, error) of a Graph API answer to a send."""
    if answer.blocked:
        return SendOutcome.FAILED, answer.network_error
    if answer.status is None:
        return SendOutcome.RETRY, answer.network_error
    if answer.ok:
        return SendOutcome.ACCEPTED, ""
    code = answer.error_code
    if answer.status == 401 or code == TOKEN_REFUSED:
        return SendOutcome.FAILED, f"access token refused by Meta: {answer.error_text()}"
    if code == OUTSIDE_WINDOW:
        return SendOutcome.FAILED, f"outside the 24-hour window: {answer.error_text()}"
    if answer.status == 429 or answer.status >= 500 or code in RETRY_CODES:
        return SendOutcome.RETRY, f"throttled or unavailable: {answer.error_text()}"
    return SendOutcome.FAILED, answer.error_text()


# --- the channel's settings and throttle -------------------------------------------------------------------------


@dataclass(frozen=True)
class CloudConfig:
    pk: int
    phone_number_id: str
    access_token: str
    throughput_per_second: int
    needs_attention: str


_config_cache: dict[str, tuple[float, CloudConfig]] = {}
_config_lock = threading.Lock()


_shared: dict = {"pid": None, "wrapper": None, "lock": threading.Lock()}


@contextmanager
def _cursor():
    """A cursor for the throttle and the channel's settings. The sending threads of a process share one
    connection (under a lock: one short statement at a time), so that a worker's sixteen sending threads
    do not hold sixteen database connections; the main thread (a task, a test) uses its own."""
    if threading.current_thread() is threading.main_thread():
        with connection.cursor() as cursor:
            yield cursor
        return
    with _shared["lock"]:
        if _shared["pid"] != os.getpid():  # made again after a prefork worker forks
            _shared["wrapper"] = connections.create_connection(DEFAULT_DB_ALIAS)
            _shared["wrapper"].inc_thread_sharing()
            _shared["pid"] = os.getpid()
        wrapper = _shared["wrapper"]
        try:
            with wrapper.cursor() as cursor:
                yield cursor
        except DatabaseError:
            wrapper.close()  # a broken connection is opened again by the next statement
            raise


def cloud_config(channel_id: str) -> CloudConfig | None:
    now = time.monotonic()
    cached = _config_cache.get(channel_id)
    if cached and now - cached[0] < CONFIG_CACHE_SECONDS:
        return cached[1]
    with _cursor() as cursor:
        cursor.execute("SELECT id, phone_number_id, access_token, throughput_per_second, needs_attention "
                       "FROM channels_app_channel WHERE channel_id = %s", [channel_id])
        row = cursor.fetchone()
    if row is None:
        return None
    config = CloudConfig(*row)
    with _config_lock:
        _config_cache[channel_id] = (now, config)
    return config


def cloud_config_forget(channel_id: str) -> None:
    _config_cache.pop(channel_id, None)


def throttle_slot(*, channel_pk: int, per_second: int) -> float:
    """The epoch time (seconds) of this send's slot: the channel's next free slot, moved on by 1/rate.
    One statement, shared by every worker (PostgreSQL and SQLite both have UPDATE ... RETURNING)."""
    now_us = int(time.time() * 1_000_000)
    step = max(1_000_000 // max(per_second, 1), 1)
    table = "channels_app_channelthrottle"
    sql = (f"UPDATE {table} SET next_slot_us = (CASE WHEN next_slot_us > %s THEN next_slot_us ELSE %s END) + %s "
           "WHERE channel_id = %s RETURNING next_slot_us")
    with _cursor() as cursor:
        cursor.execute(sql, [now_us, now_us, step, channel_pk])
        row = cursor.fetchone()
        if row is None:
            cursor.execute(f"INSERT INTO {table} (channel_id, next_slot_us) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                           [channel_pk, 0])
            cursor.execute(sql, [now_us, now_us, step, channel_pk])
            row = cursor.fetchone()
    if row is None:  # the channel row is not visible to this connection (not committed yet): no one else can send
        return now_us / 1_000_000
    return (row[0] - step) / 1_000_000


def _wait_for_slot(config: CloudConfig) -> None:
    slot = throttle_slot(channel_pk=config.pk, per_second=config.throughput_per_second)
    while (wait := slot - time.time()) > 0:
        time.sleep(min(wait, 0.05))


def _mark_needs_attention(config: CloudConfig, reason: str) -> None:
    from channels_app.models import Channel

    Channel.objects.filter(pk=config.pk, needs_attention="").update(needs_attention=reason[:500])
    cloud_config_forget_by_pk(config.pk)


def cloud_config_forget_by_pk(pk: int) -> None:
    for channel_id, (_, config) in list(_config_cache.items()):
        if config.pk == pk:
            _config_cache.pop(channel_id, None)


class WhatsAppCloudTransport:
    def accepted(self, message_ids: list[str]) -> None:
        """Nothing to do: Meta sends its statuses to the webhook itself."""

    @staticmethod
    def _post(config: CloudConfig, body: dict) -> tuple[GraphAnswer, SendOutcome, str, int]:
        """One message to the Graph API, each try in a slot of the channel's throttle. A throughput error
        (130429, 4, 80007, HTTP 429) is tried again here after a short backoff (INLINE_BACKOFF_SECONDS), so
        that a campaign keeps its pace; still throttled after that, it is a retry of the delivery's schedule."""
        throttled = 0
        while True:
            _wait_for_slot(config)
            answer = graph_request("POST", f"/{config.phone_number_id}/messages", token=config.access_token,
                                   body=body)
            outcome, error = outcome_of(answer)
            inline = answer.status == 429 or answer.error_code in INLINE_RETRY_CODES
            if outcome != SendOutcome.RETRY or not inline or throttled >= len(INLINE_BACKOFF_SECONDS):
                return answer, outcome, error, throttled
            time.sleep(INLINE_BACKOFF_SECONDS[throttled])
            throttled += 1

    def send(self, message: OutgoingMessage) -> SendResult:
        config = cloud_config(message.channel_id)
        if config is None:
            return SendResult(SendOutcome.FAILED, error="unknown channel")
        if config.needs_attention:  # Meta refused the token: asking again cannot help until it is changed
            return SendResult(SendOutcome.FAILED, error=f"channel needs attention: {config.needs_attention}")
        try:
            messages = cloud_messages(message.payload)
        except (UnsupportedContent, KeyError, TypeError) as error:
            return SendResult(SendOutcome.FAILED, error=f"Not sent: {error}"[:500])
        first: SendResult | None = None
        for cloud_message in messages:
            answer, outcome, error, throttled = self._post(config, request_body(message.client_id, cloud_message))
            if error.startswith("access token refused"):
                _mark_needs_attention(config, error)
            external_id = ""
            if outcome == SendOutcome.ACCEPTED:
                ids = answer.body.get("messages") or [{}]
                external_id = str(ids[0].get("id", "")) if isinstance(ids[0], dict) else ""
            excerpt = answer.excerpt if not throttled else f"after {throttled} throttled answer(s): {answer.excerpt}"
            result = SendResult(outcome, external_id=external_id, status_code=answer.status, error=error[:500],
                                latency_ms=answer.latency_ms, response_excerpt=excerpt[:500])
            if first is None:
                first = result
                if outcome != SendOutcome.ACCEPTED:
                    return result  # nothing left: the next attempt starts again with the first
        return first
