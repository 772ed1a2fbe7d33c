"""The right of access (API.md, "Data lifecycle": `GET /api/contacts/{id}/export/`):
a zip a person can read, with `contact.json` (indented, ISO dates) and the
contact's files under `files/`, named by when, which way and what they are."""

import json
import re
import tempfile
import zipfile
from pathlib import PurePosixPath

from django.core.files.storage import default_storage
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from channels_app.models import CampaignRecipient, Contact, Interaction, MessageDirection
from channels_app.services.opt_out import contact_opted_out_channels

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
WHO = {MessageDirection.INBOUND: "from-customer", MessageDirection.OUTBOUND: "to-customer"}


def _file_name(message, original: str, kind: str, taken: set[str]) -> str:
    """files/2026-12-01_093000_from-customer_passport.jpg: when, which way, what it is called."""
    base = SAFE_NAME.sub("-", PurePosixPath(original or kind or "file").name).strip("-") or "file"
    stem = f"files/{timezone.localtime(message.created_at):%Y-%m-%d_%H%M%S}_{WHO.get(message.direction, 'file')}"
    name, number = f"{stem}_{base}", 2
    while name in taken:
        path = PurePosixPath(base)
        name, number = f"{stem}_{path.stem}-{number}{path.suffix}", number + 1
    taken.add(name)
    return name


def _message_files(message, taken: set[str]) -> list[tuple[dict, str]]:
    """(its record in contact.json, the stored name) of each file of the message."""
    found = []
    for attachment in message.attachments.all():
        if attachment.file:
            record = {"file": _file_name(message, attachment.file_name, attachment.content_type, taken),
                      "content_type": attachment.content_type, "size": attachment.size}
            found.append((record, attachment.file.name))
    for media in message.whatsapp_media.all():
        if media.file:
            original = media.file_name or f"{media.kind}{PurePosixPath(media.file.name).suffix}"
            record = {"file": _file_name(message, original, media.kind, taken), "content_type": media.mime_type,
                      "size": media.size}
            found.append((record, media.file.name))
    return found


def _interaction_record(interaction: Interaction, taken: set[str], files: list) -> dict:
    """An interaction as contact.json gives it: what it was, its messages with their files, and the notes
    agents wrote on it."""
    messages = []
    for message in interaction.messages.all():
        attached = _message_files(message, taken)
        files.extend((record["file"], stored) for record, stored in attached)
        messages.append({
            "id": message.pk, "direction": WHO.get(message.direction, message.direction), "text": message.text,
            "status": message.status, "created_at": message.created_at, "sent_at": message.sent_at,
            "delivered_at": message.delivered_at, "files": [record for record, _ in attached],
        })
    return {
        "id": interaction.pk, "channel": interaction.channel.channel_id, "type": interaction.type,
        "subtype": interaction.subtype, "state": interaction.state, "queue": interaction.queue,
        "client_id": interaction.client_id, "created_at": interaction.created_at,
        "ended_at": interaction.ended_at, "end_reason": interaction.end_reason,
        "disposition": interaction.disposition, "user_data": interaction.user_data, "messages": messages,
        "notes": [{"text": note.text, "created_at": note.created_at} for note in interaction.notes.all()],
    }


def contact_export_document(*, contact: Contact) -> tuple[dict, list[tuple[str, str]]]:
    """contact.json's content, and the files to add: (name in the zip, name in the storage)."""
    taken: set[str] = set()
    files: list[tuple[str, str]] = []
    interactions = (Interaction.objects.filter(contact=contact).select_related("channel").order_by("created_at")
                    .prefetch_related("messages__attachments", "messages__whatsapp_media", "notes"))
    message_ids = [m for i in interactions for m in i.messages.all()]
    identities = {value for value in (contact.phone_number, contact.phone_number.lstrip("+"), contact.client_id)
                  if value}
    rows = (CampaignRecipient.objects.filter(campaign__channel__tenant_id=contact.tenant_id)
            .filter(message__in=message_ids) | CampaignRecipient.objects.filter(
                campaign__channel__tenant_id=contact.tenant_id, client_id__in=identities))
    document = {
        "exported_at": timezone.now(),
        "contact": {
            "id": contact.pk, "tenant": contact.tenant_id, "phone_number": contact.phone_number,
            "client_id": contact.client_id, "first_name": contact.first_name, "last_name": contact.last_name,
            "email": contact.email, "nickname": contact.nickname, "attributes": contact.attributes,
            "created_at": contact.created_at, "updated_at": contact.updated_at,
        },
        "opt_outs": [{"channel": opt_out.channel.channel_id, "source": opt_out.source,
                      "created_at": opt_out.created_at}
                     for opt_out in contact.opt_outs.select_related("channel").order_by("created_at")],
        "opted_out": contact_opted_out_channels(contact=contact),
        "interactions": [_interaction_record(interaction, taken, files) for interaction in interactions],
        "campaign_rows": [{
            "campaign": row.campaign_id, "campaign_name": row.campaign.name, "row_number": row.row_number,
            "client_id": row.client_id, "contact_fields": row.contact_fields,
            "custom_properties": row.custom_properties, "status": row.status, "error": row.error,
        } for row in rows.distinct().select_related("campaign", "message").order_by("campaign_id", "row_number")],
    }
    return document, files


def contact_export(*, contact: Contact):
    """The zip, in a temporary file (kept in memory up to 10 MB), positioned at its start."""
    document, files = contact_export_document(contact=contact)
    out = tempfile.SpooledTemporaryFile(max_size=10 * 1024 * 1024)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, stored in files:
            try:
                with default_storage.open(stored, "rb") as source, archive.open(name, "w") as target:
                    for chunk in iter(lambda: source.read(1 << 20), b""):
                        target.write(chunk)
            except FileNotFoundError:
                document.setdefault("missing_files", []).append(name)
        archive.writestr("contact.json", json.dumps(document, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False)
                         + "\n")
    out.seek(0)
    return out
