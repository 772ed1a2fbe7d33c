"""The standard response library: categories, responses and their attachments."""

import secrets
import string

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from channels_app import rendering
from channels_app.attachments import AttachmentKind
from channels_app.choices import ContentType
from channels_app.models.configuration import Tenant

RESPONSE_ID_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase


def generate_response_id() -> str:
    """A 16-character id in the style of the spec's StandardResponseId (e.g. 000G9aF2PQ3A000K)."""
    return "".join(secrets.choice(RESPONSE_ID_ALPHABET) for _ in range(16))


class StandardResponseCategory(models.Model):
    """A folder of a tenant's standard response library (categories nest)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="standard_response_categories")
    name = models.CharField(max_length=200)
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children"
    )

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "standard response categories"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "parent", "name"], name="category_unique_name_in_parent"),
            models.UniqueConstraint(
                fields=["tenant", "name"], condition=models.Q(parent__isnull=True), name="category_unique_root_name"
            ),
        ]

    def __str__(self):
        return self.path

    @property
    def path(self) -> str:
        names, node, seen = [], self, set()
        while node is not None and node.pk not in seen:
            seen.add(node.pk)
            names.append(node.name)
            node = node.parent
        return " / ".join(reversed(names))

    def clean(self):
        if self.parent is not None and self.tenant_id is not None and self.parent.tenant_id != self.tenant_id:
            raise ValidationError({"parent": "The parent category is of another tenant."})
        node, steps = self.parent, 0
        while node is not None:
            if self.pk is not None and node.pk == self.pk:
                raise ValidationError({"parent": "A category cannot be inside itself."})
            node, steps = node.parent, steps + 1
            if steps > 50:
                raise ValidationError({"parent": "Categories nest at most 50 levels deep."})


class Attachment(models.Model):
    """A tenant's file of a supported type (see channels_app.attachments), smaller than 100 MB."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="attachments")
    file = models.FileField(upload_to="attachments/%Y/%m/")
    name = models.CharField(max_length=255, help_text="The file name shown to the customer.")
    kind = models.CharField(max_length=16, choices=[(k.value, k.value) for k in AttachmentKind])
    mime_type = models.CharField(max_length=120)
    size = models.PositiveBigIntegerField(help_text="Bytes.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.mime_type}, {self.size} bytes)"


class StandardResponse(models.Model):
    """A standard response: what agents, strategies (InviteToChat) and campaigns send.

    `body` is the main text (it may hold field codes such as <$Contact.FirstName$>);
    `structured` holds the rest of the content type (API.md, "Structured content").
    """

    id = models.CharField(
        "StandardResponseId",
        primary_key=True,
        max_length=32,
        default=generate_response_id,
        validators=[RegexValidator(r"^[A-Za-z0-9]{1,32}$", "An id is 1 to 32 letters and digits.")],
        help_text="The stable id strategies use as StandardResponseId, e.g. 000G9aF2PQ3A000K.",
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="standard_responses")
    name = models.CharField(max_length=200)
    category = models.ForeignKey(
        StandardResponseCategory, on_delete=models.PROTECT, null=True, blank=True, related_name="responses"
    )
    language = models.CharField(max_length=16, default="en", help_text="e.g. en, en_US, fr.")
    content_type = models.CharField(max_length=32, choices=ContentType.choices, default=ContentType.TEXT)
    body = models.TextField(help_text="The main text; field codes such as <$Contact.FirstName$> are allowed.")
    structured = models.JSONField(default=dict, blank=True, help_text="The structured content of the content type.")
    attachments = models.ManyToManyField(
        Attachment, blank=True, related_name="standard_responses", help_text="Sent after the text, in order."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.id})"

    def clean(self):
        """Every limit of the spec, and every field code well formed (with its position).
        Errors are keyed by field path (`body`, `structured.header.text`, ...)."""
        if self.category is not None and self.tenant_id is not None and self.category.tenant_id != self.tenant_id:
            raise ValidationError({"category": "The category is of another tenant."})
        try:
            self.structured = rendering.validate_structured(self.content_type, self.body, self.structured)
        except rendering.ContentError as error:
            raise ValidationError(error.errors) from error

    def attachment_ids_in_structured(self) -> set[int]:
        """Attachments referenced by headers or carousel items of the structured content."""
        return {
            value
            for key, value in _walk_items(self.structured)
            if key in {"attachment", "image"} and isinstance(value, int) and not isinstance(value, bool)
        }

    def field_codes(self) -> list[str]:
        """Every field code of the body and the structured content, e.g. `Contact.FirstName`, in order."""
        codes: list[str] = []
        texts = [self.body or ""] + [value for _, value in _walk_items(self.structured) if isinstance(value, str)]
        for text in texts:
            try:
                codes.extend(code for code in rendering.template_field_codes(text) if code not in codes)
            except rendering.FieldCodeSyntaxError:
                continue  # refused on save; only rows written around the service get here
        return codes


def _walk_items(node, key=None):
    """(key, value) of every leaf of a JSON document, depth first."""
    if isinstance(node, dict):
        for child_key, value in node.items():
            yield from _walk_items(value, child_key)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_items(item, key)
    else:
        yield key, node
