"""The standard response library: saving responses, categories and
attachments, rendering a response with field values, and the emoji set."""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from channels_app import rendering
from channels_app.attachments import AttachmentRejected, detect_attachment_type
from channels_app.errors import FieldCodesMissing, InvalidFields, InvalidParameter
from channels_app.models import (
    Attachment,
    BusinessAttribute,
    Channel,
    StandardResponse,
    StandardResponseCategory,
    Tenant,
)
from channels_app.services.business_attributes import DEFAULT_EMOJIS
from channels_app.services.channels import refuse_while_used
from channels_app.services.media import payload_with_media
from channels_app.services.options import option_value


def standard_response_errors(
    *, response: StandardResponse, attachments: list[Attachment] | None = None
) -> dict[str, list[str]]:
    """Everything wrong with a standard response before it is saved: every
    limit of the spec, field codes with their position, and the category and
    attachments it names being of its own tenant. Keyed by field path, e.g.
    `structured.header.text`."""
    errors: dict[str, list[str]] = {}
    try:
        response.full_clean()
    except ValidationError as error:
        errors.update(error.message_dict)
    if response.tenant_id is None:
        return errors
    referenced = response.attachment_ids_in_structured() if "structured" not in errors else set()
    if referenced:
        known = set(
            Attachment.objects.filter(pk__in=referenced, tenant_id=response.tenant_id).values_list("pk", flat=True)
        )
        unknown = sorted(referenced - known)
        if unknown:
            errors.setdefault("structured", []).append(f"Unknown attachment id(s): {', '.join(map(str, unknown))}.")
    foreign = sorted(a.pk for a in attachments or () if a.tenant_id != response.tenant_id)
    if foreign:
        errors["attachments"] = [f"Unknown attachment id(s): {', '.join(map(str, foreign))}."]
    return errors


@transaction.atomic
def standard_response_save(
    *, response: StandardResponse, attachments: list[Attachment] | None = None
) -> StandardResponse:
    """Validate (`standard_response_errors`) and save a standard response."""
    errors = standard_response_errors(response=response, attachments=attachments)
    if errors:
        raise InvalidFields(errors)
    response.save()
    if attachments is not None:
        response.attachments.set(attachments)
    return response


@transaction.atomic
def standard_response_delete(*, response: StandardResponse) -> None:
    refuse_while_used(response, "id", "campaigns")
    response.delete()


@transaction.atomic
def standard_response_category_save(*, category: StandardResponseCategory) -> StandardResponseCategory:
    try:
        category.full_clean()
    except ValidationError as error:
        raise InvalidFields.from_django(error) from error
    category.save()
    return category


@transaction.atomic
def standard_response_category_delete(*, category: StandardResponseCategory) -> None:
    if category.children.exists() or category.responses.exists():
        raise InvalidParameter("The category still holds categories or standard responses.", field="id")
    category.delete()


@transaction.atomic
def attachment_rename(*, attachment: Attachment, name: str) -> Attachment:
    """Change the file name shown to the customer (the file itself never changes)."""
    attachment.name = name
    try:
        attachment.full_clean(exclude=["file"])
    except ValidationError as error:
        raise InvalidFields.from_django(error) from error
    attachment.save(update_fields=["name"])
    return attachment


@transaction.atomic
def attachment_delete(*, attachment: Attachment) -> None:
    """Delete an attachment no standard response names; the file goes with it."""
    if attachment.standard_responses.exists():
        raise InvalidParameter("A standard response still sends this attachment.", field="id")
    attachment.file.delete(save=False)
    attachment.delete()


def attachment_create(*, tenant: Tenant, uploaded_file: UploadedFile, name: str | None = None) -> Attachment:
    """Store an uploaded file once its content shows a supported type smaller than 100 MB."""
    file_name = name or uploaded_file.name or ""
    try:
        attachment_type = detect_attachment_type(uploaded_file.file, file_name, uploaded_file.size or 0)
    except AttachmentRejected as error:
        raise InvalidParameter(str(error), field="file") from error
    attachment = Attachment(
        tenant=tenant,
        name=file_name,
        kind=attachment_type.kind,
        mime_type=attachment_type.mime_type,
        size=uploaded_file.size,
    )
    attachment.file.save(file_name, uploaded_file, save=False)
    attachment.save()
    return attachment


@dataclass(frozen=True)
class RenderedResponse:
    payload: dict
    missing: tuple[str, ...]


def standard_response_render(*, response: StandardResponse, fields: dict | None) -> RenderedResponse:
    """Render a saved standard response with field values (see `content_render`)."""
    return content_render(
        content_type=response.content_type,
        body=response.body,
        structured=response.structured,
        fields=fields,
        attachments=list(response.attachments.all()),
    )


def standard_response_render_for(
    *, response: StandardResponse, contact=None, fields: dict | None = None, interaction_fields: dict | None = None,
) -> dict:
    """The one rendering rule of a standard response sent to a customer, on
    every path (InviteToChat, campaigns, agent messages, new sessions): the
    contact's own fields fill `Contact` codes, the given `fields` (`Contact`,
    `Agent`, `CustomProperties`) come on top, `interaction_fields` fill
    `Interaction` codes. Returns the payload; a value that breaks a limit is an
    InvalidParameter naming it, a code left without a value FieldCodesMissing
    (both raised the same way on every path; each interface maps them)."""
    fields = fields if isinstance(fields, dict) else {}
    given_contact = fields.get("Contact")
    values = {
        "Contact": {**(contact.field_code_values() if contact is not None else {}),
                    **(given_contact if isinstance(given_contact, dict) else {})},
        "Agent": fields.get("Agent") or {},
        "CustomProperties": fields.get("CustomProperties") or {},
        "Interaction": interaction_fields or {},
    }
    rendered = standard_response_render(response=response, fields=values)
    if rendered.missing:
        raise FieldCodesMissing(rendered.missing, response_id=str(response.pk))
    return rendered.payload


def content_render(
    *, content_type: str, body: str, structured: dict, fields: dict | None, attachments: list[Attachment] = ()
) -> RenderedResponse:
    """Render content with field values (`Contact`, `Agent`, `Interaction`,
    `CustomProperties`, the last also in the ESP `OtherProperty` list shape)
    into the payload a webhook carries. A value that breaks a limit once
    rendered is an InvalidParameter naming the field; field codes without a
    value are listed in `missing`."""
    fields = fields or {}
    values = rendering.normalize_field_values(
        contact=fields.get("Contact"),
        agent=fields.get("Agent"),
        custom_properties=fields.get("CustomProperties"),
        interaction=fields.get("Interaction"),
    )
    try:
        rendered = rendering.render_payload(content_type, body, structured, values)
    except rendering.ContentError as error:
        field = next(iter(error.errors))
        message = "; ".join(f"{path}: {' '.join(messages)}" for path, messages in error.errors.items())
        raise InvalidParameter(message, field=field) from error
    # Media headers, carousel images and the response's attachments with their signed links (services/media.py).
    payload = payload_with_media(dict(rendered.payload), list(attachments))
    return RenderedResponse(payload=payload, missing=rendered.missing)


def emojis_for(*, channel: Channel | None = None) -> list[dict[str, str]]:
    """The emojis agents may insert: the values of the business attribute named
    by `whatsappsession.emojis-business-attribute`, or the default set when no
    attribute is named or it has no values (WhatsApp guide, "Emojis")."""
    attribute_name = option_value(
        section="interaction-workspace", name="whatsappsession.emojis-business-attribute", channel=channel
    )
    if attribute_name:
        attribute = BusinessAttribute.objects.filter(name=attribute_name).first()
        if attribute is not None:
            values = [
                {"code": value.name, "emoji": value.display_name or _emoji_from_code(value.name)}
                for value in attribute.values.all()
            ]
            if values:
                return values
    return [{"code": code, "emoji": emoji} for code, emoji in DEFAULT_EMOJIS.items()]


def _emoji_from_code(code: str) -> str:
    """`1f970` -> 🥰; `1f468-200d-1f4bb` -> a sequence. Unparseable codes are shown as they are."""
    try:
        return "".join(chr(int(part, 16)) for part in code.replace("_", "-").split("-"))
    except ValueError:
        return code
