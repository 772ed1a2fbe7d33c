"""WhatsApp message templates on WhatsApp Cloud API channels (API.md
"WhatsApp Cloud API channels"): a notification or rich media standard
response is submitted to the channel's WABA (`POST /{waba_id}/message_templates`);
its status per (response, channel) follows Meta's
`message_template_status_update` webhooks and a sync (`GET
/{waba_id}/message_templates`). InviteToChat and campaigns send a template on
such a channel only once it is APPROVED.

Meta limits how many templates a WABA creates in an hour (100 per hour at the
time of writing); submissions beyond WHATSAPP_TEMPLATE_CREATIONS_PER_HOUR (100
by default) in the last hour are refused with 429 before Meta is asked."""

import re
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from channels_app.choices import ContentType
from channels_app.choices import Transport as TransportName
from channels_app.errors import ApplicationError, InvalidParameter, NotFound
from channels_app.models import Channel, StandardResponse, TemplateStatus, WhatsAppTemplate
from channels_app.publishing import WHATSAPP_TEMPLATE_SUBMIT, WHATSAPP_TEMPLATES_SYNC, publish_on_commit
from channels_app.transports.graph_api import graph_request
from channels_app.transports.whatsapp_cloud_payloads import TemplateUpdate

TEMPLATE_CONTENT_TYPES = (ContentType.NOTIFICATION, ContentType.RICH_MEDIA)
TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
SYNC_PAGES = 20
# Meta's template events and the status they give; others (FLAGGED, PENDING_DELETION...) change nothing.
STATUS_OF_EVENT = {
    "APPROVED": TemplateStatus.APPROVED, "REINSTATED": TemplateStatus.APPROVED,
    "REJECTED": TemplateStatus.REJECTED, "PENDING": TemplateStatus.PENDING, "IN_APPEAL": TemplateStatus.PENDING,
    "PAUSED": TemplateStatus.PAUSED, "DISABLED": TemplateStatus.DISABLED, "DELETED": TemplateStatus.DISABLED,
}
CATEGORIES = ("UTILITY", "MARKETING", "AUTHENTICATION")


class TooManyTemplates(ApplicationError):
    """More templates submitted in the last hour than Meta lets a WABA create."""

    esp_code = 920
    http_status = 429


def _cloud_channel(channel: Channel) -> None:
    if channel.transport != TransportName.WHATSAPP_CLOUD:
        raise InvalidParameter(f"{channel.channel_id} is not a WhatsApp Cloud API channel.", field="channel")


@transaction.atomic
def template_submit(*, response: StandardResponse, channel: Channel, category: str = "UTILITY") -> WhatsAppTemplate:
    """Submit a notification or rich media response as a template of the channel's WABA (sent by a task)."""
    _cloud_channel(channel)
    if channel.tenant_id != response.tenant_id:
        raise NotFound(f"Unknown channel {channel.channel_id!r}.", field="channel")
    if response.content_type not in TEMPLATE_CONTENT_TYPES:
        raise InvalidParameter("Only a notification or rich media response is a WhatsApp template.",
                               field="content_type")
    if category not in CATEGORIES:
        raise InvalidParameter(f"category is one of {', '.join(CATEGORIES)}.", field="category")
    template = response.structured.get("template") or {}
    name = str(template.get("name") or "")
    if not TEMPLATE_NAME.match(name):
        raise InvalidParameter("A WhatsApp template name holds lowercase letters, digits and underscores only.",
                               field="structured.template.name")
    if not channel.waba_id:
        raise InvalidParameter("The channel has no WhatsApp Business Account id.", field="waba_id")
    Channel.objects.select_for_update().filter(pk=channel.pk).first()  # submissions of one channel, one at a time
    hour_ago = timezone.now() - timedelta(hours=1)
    recent = WhatsAppTemplate.objects.filter(channel__waba_id=channel.waba_id, submitted_at__gte=hour_ago).count()
    if recent >= settings.WHATSAPP_TEMPLATE_CREATIONS_PER_HOUR:
        raise TooManyTemplates(
            f"{recent} templates were submitted to WABA {channel.waba_id} in the last hour; Meta allows "
            f"{settings.WHATSAPP_TEMPLATE_CREATIONS_PER_HOUR}. Try again later.", field="channel")
    row, _ = WhatsAppTemplate.objects.update_or_create(
        standard_response=response, channel=channel,
        defaults={"name": name, "language": template.get("language") or response.language,
                  "category": category, "status": TemplateStatus.PENDING, "reason": "",
                  "submitted_at": timezone.now(), "template_id": ""},
    )
    pk = row.pk
    publish_on_commit(WHATSAPP_TEMPLATE_SUBMIT, pk)
    return row


def template_components(response: StandardResponse) -> list[dict]:
    """The components of a template creation request, from the standard response."""
    structured = response.structured
    parameters = structured.get("parameters") or {}
    components = []
    header = structured.get("header")
    if header and header.get("type") == "text":
        components.append({"type": "HEADER", "format": "TEXT", "text": header.get("text", "")})
    elif header:
        # Meta wants a sample file uploaded with its Resumable Upload API; a link stands in for it here.
        components.append({"type": "HEADER", "format": header["type"].upper(),
                           "example": {"header_handle": [f"attachment:{header.get('attachment')}"]}})
    body = {"type": "BODY", "text": response.body}
    if parameters:
        body["example"] = {"body_text": [[_sample(value, number) for number, value in sorted(
            parameters.items(), key=lambda item: int(item[0]))]]}
    components.append(body)
    if structured.get("footer"):
        components.append({"type": "FOOTER", "text": structured["footer"]})
    buttons = []
    for button in structured.get("buttons") or ():
        if button.get("type") == "quick_reply":
            buttons.append({"type": "QUICK_REPLY", "text": button.get("text", "")})
        elif button.get("type") == "phone":
            buttons.append({"type": "PHONE_NUMBER", "text": button.get("text", ""),
                            "phone_number": button.get("phone", "")})
        elif button.get("type") == "url":
            url = button.get("url", "")
            item = {"type": "URL", "text": button.get("text", ""), "url": url}
            if button.get("dynamic"):
                item["url"] = url.rstrip("/") + "/{{1}}" if "{{1}}" not in url else url
                item["example"] = [item["url"].replace("{{1}}", "example")]
            buttons.append(item)
    if buttons:
        components.append({"type": "BUTTONS", "buttons": buttons})
    return components


def _sample(value: str, number: str) -> str:
    """A sample value for Meta's reviewers: the field codes' names (<$Contact.FirstName$> -> FirstName)."""
    names = re.findall(r"<\$[^.$]+\.([^$]+)\$>", value)
    return " ".join(names) or value or f"value {number}"


def template_send_to_meta(*, template_pk: int) -> str:
    """The task's half of a submission: ask Meta, keep its answer (id and status, or the refusal)."""
    row = WhatsAppTemplate.objects.select_related("channel", "standard_response").filter(pk=template_pk).first()
    if row is None or row.template_id:
        return row.status if row else "gone"
    channel, response = row.channel, row.standard_response
    body = {"name": row.name, "language": row.language, "category": row.category,
            "components": template_components(response)}
    answer = graph_request("POST", f"/{channel.waba_id}/message_templates", token=channel.access_token, body=body)
    if answer.ok:
        status = str(answer.body.get("status") or "PENDING").upper()
        WhatsAppTemplate.objects.filter(pk=row.pk).update(
            template_id=str(answer.body.get("id") or ""), reason="",
            status=status if status in TemplateStatus.values else TemplateStatus.PENDING)
        return status
    reason = f"not created: {answer.error_text()}"
    if answer.status == 401 or answer.error_code == 190:
        Channel.objects.filter(pk=channel.pk, needs_attention="").update(
            needs_attention=f"access token refused by Meta: {answer.error_text()}"[:500])
    WhatsAppTemplate.objects.filter(pk=row.pk).update(status=TemplateStatus.REJECTED, reason=reason[:500])
    return TemplateStatus.REJECTED


def templates_sync_request(*, channel: Channel) -> None:
    """`POST /api/channels/{id}/sync-templates/` and the admin's "sync now": a task asks Meta."""
    _cloud_channel(channel)
    if not channel.waba_id:
        raise InvalidParameter("The channel has no WhatsApp Business Account id.", field="waba_id")
    pk = channel.pk
    publish_on_commit(WHATSAPP_TEMPLATES_SYNC, pk)


def templates_sync(*, channel_pk: int) -> int:
    """Every template of the channel's WABA, as Meta lists them, onto our rows; returns the rows changed."""
    channel = Channel.objects.filter(pk=channel_pk).first()
    if channel is None or not channel.waba_id:
        return 0
    rows = {(row.name, row.language): row for row in WhatsAppTemplate.objects.filter(channel=channel)}
    changed, url = 0, f"/{channel.waba_id}/message_templates"
    query = {"fields": "name,status,language,id,rejected_reason", "limit": 100}
    for _ in range(SYNC_PAGES):
        answer = graph_request("GET", url, token=channel.access_token, query=query)
        if not answer.ok:
            break
        for item in answer.body.get("data") or ():
            if not isinstance(item, dict):
                continue
            row = rows.get((item.get("name"), item.get("language")))
            status = STATUS_OF_EVENT.get(str(item.get("status") or "").upper())
            if row is None or status is None:
                continue
            reason = str(item.get("rejected_reason") or "")
            reason = "" if reason == "NONE" else reason
            changed += WhatsAppTemplate.objects.filter(pk=row.pk).update(
                status=status, template_id=str(item.get("id") or row.template_id), reason=reason[:500],
                updated_at=timezone.now())
        next_url = (answer.body.get("paging") or {}).get("next")
        if not next_url:
            break
        url, query = next_url, None
    return changed


def template_status_apply(*, channel: Channel, update: TemplateUpdate) -> int:
    """A `message_template_status_update` webhook: the status of the template on every channel of the WABA."""
    status = STATUS_OF_EVENT.get(update.event)
    if status is None:
        return 0
    rows = WhatsAppTemplate.objects.filter(channel__waba_id=channel.waba_id) if channel.waba_id else \
        WhatsAppTemplate.objects.filter(channel=channel)
    matching = rows.filter(template_id=update.template_id) if update.template_id else rows.none()
    if update.template_id and not matching.exists():
        matching = rows.filter(name=update.name, language=update.language)
    elif not update.template_id:
        matching = rows.filter(name=update.name, language=update.language)
    reason = "" if update.reason in ("", "NONE") else update.reason
    return matching.update(status=status, reason=reason[:500], updated_at=timezone.now(),
                           **({"template_id": update.template_id} if update.template_id else {}))


def template_refusal(*, channel: Channel, response: StandardResponse | None) -> str | None:
    """Why the channel may not send this response now (a template not APPROVED on a WhatsApp Cloud API
    channel), or None. No query for other channels or content types."""
    if (response is None or channel.transport != TransportName.WHATSAPP_CLOUD
            or response.content_type not in TEMPLATE_CONTENT_TYPES):
        return None
    status = (WhatsAppTemplate.objects.filter(standard_response=response, channel=channel)
              .values_list("status", flat=True).first())
    if status == TemplateStatus.APPROVED:
        return None
    return (f"template not approved: standard response {response.pk} is "
            + (f"{status} on {channel.channel_id}" if status else f"not submitted to {channel.channel_id}"))
