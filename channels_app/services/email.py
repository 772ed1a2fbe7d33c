"""E-mail replies (API.md, "E-mail"; third-party-messaging-api.txt, "Example: Email data flow").

On an `email` channel an agent's text leaves as the spec's e-mail: a subject
("Re: " and the subject of the customer's first e-mail, kept as the
interaction's `Subject` hub attribute), a plain text and an HTML part, and the
address replies go to. Text size limits are per media type: WhatsApp's
`whatsappsession.max-text-message-size` is not an e-mail's."""

from django.utils.html import escape, linebreaks

from channels_app.choices import MediaType
from channels_app.models import Interaction
from channels_app.options_catalog import IW
from channels_app.services.options import session_option

# An e-mail body is not a chat bubble: bounded only against abuse (bytes of UTF-8).
EMAIL_TEXT_BYTES = 1024 * 1024


def text_limit(*, interaction: Interaction) -> tuple[int, str]:
    """The largest text an agent may send on the interaction's channel (bytes of UTF-8), and its source."""
    if interaction.channel.media_type == MediaType.EMAIL:
        return EMAIL_TEXT_BYTES, "the e-mail limit"
    # "At the next interaction": the value the session started with (services/options.py session_option).
    limit = session_option(interaction=interaction, section=IW, name="whatsappsession.max-text-message-size")
    return limit, "whatsappsession.max-text-message-size"


def reply_subject(subject: str) -> str:
    subject = (subject or "").strip()
    if subject.lower().startswith("re:"):
        return subject
    return f"Re: {subject}" if subject else "Re:"


def email_payload(*, interaction: Interaction, payload: dict) -> dict:
    """A Text payload as the spec's e-mail; other content is left as it is."""
    if payload.get("type") != "Text":
        return payload
    text = str(payload.get("text") or "")
    channel = interaction.channel
    email = {
        "type": "Email",
        "subject": reply_subject(interaction.user_data.get("Subject", "")),
        "content": [{"type": "text", "text": text}, {"type": "html", "text": linebreaks(escape(text))}],
        "context": {"replyTo": {"id": channel.business_id, "name": channel.name}},
    }
    if payload.get("attachments"):
        email["attachments"] = payload["attachments"]  # an e-mail carries its files itself
    return email
