"""E-mail replies (API.md, "E-mail"; third-party-messaging-api.txt, "Example: Email data flow").

On an `email` channel an agent's text leaves as the spec's e-mail: a subject
("Re: " and the subject of the customer's first e-mail, kept as the
interaction's `Subject` hub attribute), a plain text and an HTML part, and the
address replies go to. InviteToChat and campaigns send the same shape, their
subject being the invitation's `Subject` user data or the standard response's
name. Text size limits are per media type: WhatsApp's
`whatsappsession.max-text-message-size` is not an e-mail's."""

from django.utils.html import escape, linebreaks

from channels_app.choices import MediaType
from channels_app.models import Interaction
from channels_app.options_catalog import IW
from channels_app.services.options import session_option
from channels_app.text_rules import one_line

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
    """"Re: " and the thread's subject, on one line whatever was kept: a CR or LF in a subject would add a
    header line to the e-mail the third party writes."""
    subject = one_line(subject or "")
    if subject.lower().startswith("re:"):
        return subject
    return f"Re: {subject}" if subject else "Re:"


def invitation_subject(*, interaction: Interaction, response_name: str) -> str:
    """The subject of an e-mail that opens a thread (InviteToChat, a campaign): the invitation's `Subject`
    user data when given, else the standard response's name; on one line. It becomes the interaction's
    `Subject` hub attribute, so that the agent's replies are "Re: " and it."""
    subject = one_line(str(interaction.user_data.get("Subject") or "")) or one_line(response_name)
    interaction.user_data["Subject"] = subject
    return subject


def email_payload(*, interaction: Interaction, payload: dict, subject: str | None = None) -> dict:
    """A Text payload as the spec's e-mail; other content is left as it is. `subject`: of an e-mail that
    opens a thread (`invitation_subject`); else a reply's ("Re: " and the interaction's `Subject`)."""
    if payload.get("type") != "Text":
        return payload
    text = str(payload.get("text") or "")
    channel = interaction.channel
    email = {
        "type": "Email",
        "subject": reply_subject(interaction.user_data.get("Subject", "")) if subject is None else subject,
        "content": [{"type": "text", "text": text}, {"type": "html", "text": linebreaks(escape(text))}],
        "context": {"replyTo": {"id": channel.business_id, "name": channel.name}},
    }
    if payload.get("attachments"):
        email["attachments"] = payload["attachments"]  # an e-mail carries its files itself
    return email
