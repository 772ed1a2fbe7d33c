"""Admin for the standard response library: one form per content type (only
its fields), errors next to the field, and a live phone preview."""

import json
import re

from django import forms
from django.contrib import admin
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import Count
from django.http import HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.urls import path, reverse

from channels_app import rendering
from channels_app.admin.forms import TextRulesModelForm
from channels_app.admin.scoping import ScopedModelAdmin
from channels_app.choices import ContentType
from channels_app.errors import ApplicationError
from channels_app.models import Attachment, StandardResponse, StandardResponseCategory
from channels_app.rendering import limits
from channels_app.selectors import default_tenant, restrict
from channels_app.services.standard_responses import (
    attachment_create,
    attachment_delete,
    attachment_rename,
    content_render,
    standard_response_category_delete,
    standard_response_category_save,
    standard_response_delete,
    standard_response_save,
)
from channels_app.text_rules import escaped, text_rule_broken_at, text_rule_message

HEADER_CHOICES = [("", "No header"), ("text", "Text"), ("image", "Image"), ("video", "Video"), ("document", "Document")]

# The editor fields each content type shows, in order.
EDITOR_FIELDS = {
    ContentType.TEXT: [],
    ContentType.NOTIFICATION: ["template_name", "template_id", "template_language", "parameters"],
    ContentType.RICH_MEDIA: [
        "template_name", "template_id", "template_language", "parameters",
        "header_type", "header_text", "header_attachment", "footer", "buttons",
    ],
    ContentType.REPLY_BUTTONS: ["header_type", "header_text", "header_attachment", "footer", "buttons"],
    ContentType.LIST: ["header_text", "footer", "list_button", "sections"],
    ContentType.ABC_QUICK_REPLIES: ["items"],
    ContentType.ABC_LIST_PICKER: ["picker_title", "picker_subtitle", "sections"],
    ContentType.ABC_CAROUSEL: ["items"],
}

# The row editors of the change form (static/channels_app/structured_rows.js) by content type and field: the
# keys of one row, each (key, label, kind, limit); kind "select:a|b" offers choices, "check" a checkbox,
# "rows:<name>" nested rows (a section's); "total": a limit on the nested rows of all rows together (a list
# message's 10 rows across its sections), counted as the user edits. The limits are the rendering module's: the
# server still decides.
ROW_EDITORS = {
    ContentType.RICH_MEDIA: {"buttons": {
        "noun": "button", "max": limits.QUICK_REPLIES_MAX, "keys": [
            ["type", "Type", "select:quick_reply|phone|url", None],
            ["text", "Text", "text", limits.RICH_MEDIA_BUTTON_TEXT_MAX],
            ["phone", "Phone (phone buttons)", "text", None], ["url", "URL (url buttons)", "text", None],
            ["dynamic", "URL ends with {{1}}", "check", None], ["parameter", "{{1}} value", "text", None],
        ]}},
    ContentType.REPLY_BUTTONS: {"buttons": {
        "noun": "button", "max": limits.REPLY_BUTTONS_MAX, "keys": [
            ["title", "Title", "text", limits.BUTTON_TITLE_MAX], ["id", "Reply id", "text", limits.REPLY_BUTTON_ID_MAX],
        ]}},
    ContentType.LIST: {"sections": {
        "noun": "section", "max": limits.LIST_ROWS_MAX,
        "total": {"key": "rows", "noun": "row", "max": limits.LIST_ROWS_MAX, "note": "across all sections"},
        "keys": [
            ["title", "Section title", "text", limits.LIST_SECTION_TITLE_MAX],
            ["rows", "Rows", "rows:row", {"max": limits.LIST_ROWS_MAX, "keys": [
                ["title", "Title", "text", limits.BUTTON_TITLE_MAX],
                ["description", "Description", "text", limits.LIST_ROW_DESCRIPTION_MAX],
                ["id", "Reply id", "text", limits.LIST_ROW_ID_MAX],
            ]}],
        ]}},
    ContentType.ABC_QUICK_REPLIES: {"items": {
        "noun": "quick reply", "max": limits.ABC_QUICK_REPLIES_MAX, "keys": [
            ["title", "Title", "text", None], ["identifier", "Identifier", "text", None],
        ]}},
    ContentType.ABC_LIST_PICKER: {"sections": {
        "noun": "section", "max": None,
        "total": {"key": "items", "noun": "item", "max": limits.ABC_LIST_PICKER_ITEMS_MAX,
                  "note": "across all sections"},
        "keys": [
            ["title", "Section title", "text", None],
            ["items", "Items", "rows:item", {"max": limits.ABC_LIST_PICKER_ITEMS_MAX, "keys": [
                ["title", "Title", "text", None], ["subtitle", "Subtitle", "text", None],
                ["identifier", "Identifier", "text", None],
            ]}],
        ]}},
    ContentType.ABC_CAROUSEL: {"items": {
        "noun": "card", "max": limits.ABC_CAROUSEL_ITEMS_MAX, "keys": [
            ["title", "Title", "text", None], ["subtitle", "Subtitle", "text", None],
            ["url", "Link (https://...)", "text", None],
        ]}},
}

# Live counters of the plain fields (characters, as the server counts them).
FIELD_LIMITS = {
    "body": limits.BODY_MAX, "header_text": limits.HEADER_TEXT_MAX, "footer": limits.FOOTER_MAX,
    "list_button": limits.BUTTON_TITLE_MAX,
}

# Words for the parts of a structured path, as an administrator reads them.
PATH_WORDS = {
    "buttons": "Button", "sections": "Section", "rows": "row", "items": "Item", "header": "Header",
    "footer": "Footer", "template": "Template", "parameters": "Parameter", "button": "List button",
    "title": "title", "text": "text", "id": "reply id", "identifier": "identifier", "description": "description",
    "subtitle": "subtitle", "url": "URL", "phone": "phone", "parameter": "{{1}} value", "attachment": "attachment",
    "type": "type", "name": "name", "language": "language", "image": "image",
}


# Paths that are a whole editor field: their errors need no path in front (they stand next to the field).
WHOLE_FIELD_PATHS = {
    "template", "template.name", "template.id", "template.language", "parameters", "header", "header.text",
    "header.attachment", "footer", "buttons", "button", "sections", "items", "title", "subtitle",
}


def plain_path(path: str) -> str:
    """`structured.sections[0].rows[1].title` -> `Section 1, row 2, title`."""
    words = []
    for part in path.removeprefix("structured").strip(".").split("."):
        match = re.fullmatch(r"(\w+)\[(\d+)\]", part)
        if match:
            words.append(f"{PATH_WORDS.get(match[1], match[1])} {int(match[2]) + 1}")
        elif part:
            words.append(PATH_WORDS.get(part, part.replace("_", " ")))
    text = ", ".join(words)
    return text[:1].upper() + text[1:]


def _json_field(label: str) -> forms.CharField:
    # The JSON the row editor (static/channels_app/structured_rows.js) writes; the script hides the text box
    # and shows rows of fields instead (without scripts the JSON stays editable).
    return forms.CharField(
        label=label, required=False, widget=forms.Textarea(attrs={"class": "sr-json", "rows": 4, "cols": 80})
    )


class StandardResponseForm(TextRulesModelForm):
    template_name = forms.CharField(required=False, label="Template name", help_text="As approved by WhatsApp.")
    template_id = forms.CharField(required=False, label="Template id")
    template_language = forms.CharField(required=False, label="Template language", help_text="e.g. en, en_US.")
    parameters = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        help_text="One template parameter a line: 1 = <$Contact.FirstName$>. The body refers to them as {{1}}.",
    )
    header_type = forms.ChoiceField(choices=HEADER_CHOICES, required=False, label="Header")
    header_text = forms.CharField(required=False, label="Header text", help_text="At most 60 characters.")
    header_attachment = forms.ModelChoiceField(
        Attachment.objects.all(),
        required=False,
        label="Header attachment",
        help_text="For an image, video or document header.",
    )
    footer = forms.CharField(required=False, help_text="At most 60 characters.")
    buttons = _json_field("Buttons")
    list_button = forms.CharField(required=False, label="List button", help_text="At most 20 characters.")
    sections = _json_field("Sections")
    picker_title = forms.CharField(required=False, label="List title")
    picker_subtitle = forms.CharField(required=False, label="List subtitle")
    items = _json_field("Items")

    class Meta:
        model = StandardResponse
        fields = ["id", "tenant", "name", "category", "language", "content_type", "body", "attachments"]
        widgets = {"body": forms.Textarea(attrs={"rows": 6, "cols": 80}), "content_type": forms.HiddenInput}

    def __init__(self, *args, content_type: str | None = None, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if user is not None:  # choices of the user's tenants only
            for name in ("tenant", "category", "attachments", "header_attachment"):
                if name in self.fields:
                    self.fields[name].queryset = restrict(self.fields[name].queryset, user)
        self.user = user
        if "tenant" in self.fields:
            self.fields["tenant"].required = False
            self.fields["tenant"].help_text = "Empty: the category's tenant, else your first tenant."
        if "tenant" in self.fields and self.instance.pk and not self.instance._state.adding:
            self.fields["tenant"].disabled = True  # a response stays in its tenant
        self.content_type = content_type or self.instance.content_type or ContentType.TEXT
        self.initial.setdefault("content_type", self.content_type)
        editors = ROW_EDITORS.get(self.content_type, {})
        for name in ("buttons", "sections", "items"):
            if name in editors:
                self.fields[name].widget.attrs["data-rows"] = json.dumps(editors[name])
        for name, limit in FIELD_LIMITS.items():
            if name in self.fields:
                self.fields[name].widget.attrs["data-max"] = limit
        if self.instance.pk or self.instance.structured:
            self._load_structured(self.instance.structured or {})
        if "id" in self.fields and self.instance.pk and not self.instance._state.adding:
            self.fields["id"].disabled = True

    def _load_structured(self, structured: dict) -> None:
        template = structured.get("template") or {}
        header = structured.get("header") or {}
        initial = {
            "template_name": template.get("name", ""),
            "template_id": template.get("id", ""),
            "template_language": template.get("language", ""),
            "parameters": "\n".join(f"{k} = {v}" for k, v in (structured.get("parameters") or {}).items()),
            "header_type": header.get("type", ""),
            "header_text": header.get("text", ""),
            "header_attachment": header.get("attachment"),
            "footer": structured.get("footer", ""),
            "list_button": structured.get("button", ""),
            "picker_title": structured.get("title", ""),
            "picker_subtitle": structured.get("subtitle", ""),
        }
        for name in ("buttons", "sections", "items"):
            if structured.get(name):
                initial[name] = json.dumps(structured[name], indent=2, ensure_ascii=False)
        for key, value in initial.items():
            self.initial.setdefault(key, value)

    # --- building `structured` from the editor fields -------------------------

    def _parse_json(self, name: str):
        text = (self.cleaned_data.get(name) or "").strip()
        if not text:
            return None
        try:
            parsed = json.loads(text)
        except ValueError as error:
            self.add_error(name, f"Not valid JSON: {escaped(str(error))}")
            return None
        if found := text_rule_broken_at(parsed, name):  # an escape such as "\ud800" makes a lone surrogate
            self.add_error(name, text_rule_message(*found))
            return None
        return parsed

    def _parse_parameters(self) -> dict:
        parameters = {}
        for number, line in enumerate((self.cleaned_data.get("parameters") or "").splitlines(), start=1):
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep:
                self.add_error("parameters", f"Line {number}: write it as 1 = <$Contact.FirstName$>.")
                continue
            parameters[key.strip()] = value.strip()
        return parameters

    def build_structured(self) -> dict:
        data, fields = self.cleaned_data, EDITOR_FIELDS[self.content_type]
        structured: dict = {}
        if "template_name" in fields:
            structured["template"] = {
                key: data.get(f"template_{key}") for key in ("name", "id", "language") if data.get(f"template_{key}")
            }
            parameters = self._parse_parameters()
            if parameters:
                structured["parameters"] = parameters
        if "header_type" in fields and data.get("header_type"):
            if data["header_type"] == "text":
                structured["header"] = {"type": "text", "text": data.get("header_text", "")}
            else:
                attachment = data.get("header_attachment")
                structured["header"] = {
                    "type": data["header_type"],
                    "attachment": attachment.pk if attachment else None,
                }
        elif "header_type" not in fields and "header_text" in fields and data.get("header_text"):
            structured["header"] = {"type": "text", "text": data["header_text"]}
        if "footer" in fields and data.get("footer"):
            structured["footer"] = data["footer"]
        if "list_button" in fields:
            structured["button"] = data.get("list_button", "")
        if "picker_title" in fields:
            structured["title"] = data.get("picker_title", "")
            if data.get("picker_subtitle"):
                structured["subtitle"] = data["picker_subtitle"]
        for name in ("buttons", "sections", "items"):
            if name in fields:
                parsed = self._parse_json(name)
                if parsed is not None:
                    structured[name] = parsed
        return structured

    def clean(self):
        cleaned = super().clean()
        self.instance.content_type = self.content_type
        cleaned["content_type"] = self.content_type
        self.instance.structured = self.build_structured()
        if self.instance.tenant_id is None and not cleaned.get("tenant") and self.user is not None:
            cleaned["tenant"] = default_tenant(self.user, parent=cleaned.get("category"))
            if cleaned["tenant"] is None:
                self.add_error("tenant", "You are a member of no tenant.")
            else:
                self.instance.tenant = cleaned["tenant"]
        tenant = cleaned.get("tenant") or getattr(self.instance, "tenant", None)
        if tenant is not None:
            foreign = [a for a in cleaned.get("attachments") or () if a.tenant_id != tenant.pk]
            if foreign:
                self.add_error("attachments", "These attachments are of another tenant: "
                               f"{', '.join(a.name for a in foreign)}.")
        return cleaned

    def _update_errors(self, errors):
        """Model errors are keyed by path (`structured.header.text`); show each next to its editor field."""
        remapped: dict[str, list] = {}
        for key, messages in errors.message_dict.items():
            field = _editor_field_for(key, EDITOR_FIELDS[self.content_type])
            if field in self.errors:
                continue  # the field's own error (e.g. "Not valid JSON") already explains it
            whole = key == field or key.removeprefix("structured.") in WHOLE_FIELD_PATHS
            remapped.setdefault(field, []).extend(messages if whole else [f"{plain_path(key)}: {m}" for m in messages])
        if remapped:
            super()._update_errors(ValidationError(remapped))


def _editor_field_for(path: str, fields: list[str]) -> str:
    if not path.startswith("structured"):
        return path if path in StandardResponseForm.base_fields else NON_FIELD_ERRORS
    rest = path.removeprefix("structured").lstrip(".")
    candidates = [
        ("template.name", "template_name"), ("template.id", "template_id"), ("template.language", "template_language"),
        ("template", "template_name"), ("parameters", "parameters"), ("header.text", "header_text"),
        ("header.attachment", "header_attachment"), ("header", "header_type"), ("footer", "footer"),
        ("buttons", "buttons"), ("button", "list_button"), ("sections", "sections"), ("items", "items"),
        ("title", "picker_title"), ("subtitle", "picker_subtitle"),
    ]
    for prefix, field in candidates:
        if (rest == prefix or rest.startswith(prefix + ".") or rest.startswith(prefix + "[")) and field in fields:
            return field
    if rest.startswith("header") and "header_text" in fields:
        return "header_text"
    return NON_FIELD_ERRORS


@admin.register(StandardResponse)
class StandardResponseAdmin(ScopedModelAdmin):
    form = StandardResponseForm
    list_display = ["name", "id", "content_type", "language", "category", "updated_at"]
    list_filter = ["content_type", "language", "category"]
    search_fields = ["name", "body", "id"]
    list_select_related = ["category"]
    filter_horizontal = ["attachments"]
    change_form_template = "admin/channels_app/standardresponse/change_form.html"

    def _content_type(self, request, obj=None) -> str:
        if obj is not None:
            return obj.content_type
        requested = request.POST.get("content_type") or request.GET.get("content_type")
        return requested if requested in ContentType.values else ""

    def add_view(self, request, form_url="", extra_context=None):
        if not self._content_type(request):
            context = {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "Add standard response: choose its content type",
                "content_types": ContentType.choices,
                "add_url": reverse("admin:channels_app_standardresponse_add"),
            }
            return TemplateResponse(request, "admin/channels_app/standardresponse/choose_type.html", context)
        return super().add_view(request, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        content_type = self._content_type(request, obj)

        class ContentTypeForm(form_class):
            def __init__(self, *args, **inner):
                super().__init__(*args, content_type=content_type, user=request.user, **inner)

        return ContentTypeForm

    def get_fieldsets(self, request, obj=None):
        content_type = self._content_type(request, obj) or ContentType.TEXT
        label = ContentType(content_type).label
        fieldsets = [
            (None, {"fields": ["id", "tenant", "name", "category", "language", "content_type"]}),
            (label, {"fields": ["body", *EDITOR_FIELDS[content_type]]}),
            ("Attachments (sent after the text)", {"fields": ["attachments"], "classes": ["collapse"]}),
        ]
        return fieldsets

    delete_service = standard_response_delete

    def save_model(self, request, obj, form, change):
        standard_response_save(response=obj)

    def get_urls(self):
        return [
            path(
                "preview/",
                self.guarded(self.preview_view, "admin:channels_app_standardresponse_preview"),
                name="channels_app_standardresponse_preview",
            ),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["preview_url"] = reverse("admin:channels_app_standardresponse_preview")
        context["sample_values"] = json.dumps(_sample_values(obj), indent=1, ensure_ascii=False)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def preview_view(self, request):
        """Render the form being edited, with the sample values, as a phone would show it: the errors above,
        and the message below them (as typed, not checked, while there are errors)."""
        if request.method != "POST":
            return HttpResponseBadRequest("POST the change form.")
        content_type = self._content_type(request) or ContentType.TEXT
        form = StandardResponseForm(request.POST, content_type=content_type, user=request.user)
        checked = ["body", *EDITOR_FIELDS[content_type]]  # the fields this preview checks (the others: on save)
        errors: list[str] = []
        invalid: list[str] = []
        payload, missing, draft = None, (), False
        try:
            sample = json.loads(request.POST.get("_sample_values") or "{}")
            if not isinstance(sample, dict):
                raise ValueError("an object is expected")
        except ValueError as error:
            sample, errors = {}, [f"Sample values: not a JSON object ({error})."]
        form.is_valid()  # fills cleaned_data and the instance; errors are shown above the preview
        for name, messages in form.errors.items():
            if name in checked:
                errors.append(f"{form[name].label}: {' '.join(messages)}")
                invalid.append(name)
        response = form.instance
        if not invalid:
            try:
                response.full_clean(exclude=["id", "tenant", "name", "category", "language"], validate_unique=False)
                rendered = content_render(
                    content_type=response.content_type,
                    body=response.body,
                    structured=response.structured,
                    fields=sample,
                    attachments=list(form.cleaned_data.get("attachments") or ()),
                )
                payload, missing = rendered.payload, rendered.missing
            except ValidationError as error:
                for path, messages in error.message_dict.items():
                    errors.append(f"{plain_path(path)}: {' '.join(messages)}")
                    invalid.append(_editor_field_for(path, checked))
            except ApplicationError as error:
                errors.append(error.message)
                invalid.append(_editor_field_for(error.field or "", checked))
        if payload is None:
            payload, missing = _draft_payload(response.body or "", response.structured or {}, sample)
            draft = True
        context = {
            "payload": _for_template(payload), "missing": missing, "errors": errors, "draft": draft,
            "invalid": " ".join(dict.fromkeys(name for name in invalid if name in checked)),
            "checked": " ".join(checked),
        }
        return TemplateResponse(request, "admin/channels_app/standardresponse/phone_preview.html", context)


# The sample values of the preview: a contact and an agent, and a stand-in for every other field code the response
# uses, so that a saved response previews whole (the administrator can change them beside the preview).
SAMPLE_VALUES = {"Contact": {"FirstName": "John", "LastName": "Smith"}, "Agent": {"FirstName": "Ann"},
                 "CustomProperties": {}}


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _sample_values(response: StandardResponse | None) -> dict:
    sample = json.loads(json.dumps(SAMPLE_VALUES))
    if response is None:
        return sample
    values = rendering.normalize_field_values(contact=sample["Contact"], agent=sample["Agent"])
    for text in _strings([response.body, response.structured]):
        try:
            missing = rendering.render_template(text, values).missing
        except rendering.FieldCodeSyntaxError:
            continue
        for code in missing:
            section, _, name = code.partition(".")
            sample.setdefault(section, {}).setdefault(name, f"[{name}]")
    return sample


def _draft_payload(body: str, structured: dict, sample: dict) -> tuple[dict, tuple[str, ...]]:
    """The message as typed, for content that does not pass the checks yet: field codes filled where they can
    be, `{{n}}` by its parameter; shaped as the preview template reads a payload. Nothing here is checked: the
    errors above it say what is wrong."""
    values = rendering.normalize_field_values(
        contact=sample.get("Contact"), agent=sample.get("Agent"),
        custom_properties=sample.get("CustomProperties"), interaction=sample.get("Interaction"),
    )
    missing: list[str] = []

    def filled(value) -> str:
        if not isinstance(value, str):
            return ""
        try:
            result = rendering.render_template(value, values)
        except rendering.FieldCodeSyntaxError:
            return value
        missing.extend(result.missing)
        return result.text

    raw_parameters = structured.get("parameters")
    parameters = {str(k): filled(v) for k, v in raw_parameters.items()} if isinstance(raw_parameters, dict) else {}

    def text(value) -> str:
        return re.sub(r"\{\{(\d+)\}\}", lambda match: parameters.get(match[1], match[0]), filled(value))

    def rows(raw, keys) -> list[dict]:
        if not isinstance(raw, list):
            return []
        return [{key: text(item.get(key)) for key in keys if isinstance(item.get(key), str)}
                for item in raw if isinstance(item, dict)]

    payload: dict = {"text": text(body)}
    template = structured.get("template")
    if isinstance(template, dict) and isinstance(template.get("name"), str):
        payload["template"] = {"name": template["name"], "language": str(template.get("language") or "")}
    header = structured.get("header")
    if isinstance(header, dict) and header.get("type") in ("text", "image", "video", "document"):
        payload["header"] = {"type": header["type"], "text": text(header.get("text")),
                             "attachment": header.get("attachment")}
    for key in ("footer", "button", "title", "subtitle"):
        if isinstance(structured.get(key), str) and structured[key]:
            payload[key] = text(structured[key])
    payload["buttons"] = rows(structured.get("buttons"), ("type", "text", "title"))
    payload["items"] = rows(structured.get("items"), ("title", "subtitle"))
    sections = structured.get("sections")
    payload["sections"] = [
        {"title": text(section.get("title")), "rows": rows(section.get("rows"), ("title", "description")),
         "items": rows(section.get("items"), ("title", "subtitle"))}
        for section in (sections if isinstance(sections, list) else []) if isinstance(section, dict)
    ]
    return payload, tuple(dict.fromkeys(missing))


def _for_template(payload: dict | None) -> dict | None:
    """Rename `items` keys: in a template, `dict.items` would be the method when the key is absent."""
    if payload is None:
        return None
    sections = [
        {**section, "choices": section.get("items", []), "rows": section.get("rows", [])}
        for section in payload.get("sections", [])
    ]
    return {**payload, "choices": payload.get("items", []), "sections": sections}


class AttachmentForm(TextRulesModelForm):
    user = None  # set by the admin: the tenant defaults to the user's first

    class Meta:
        model = Attachment
        fields = ["tenant", "file", "name"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].required = False
        if "tenant" in self.fields:
            self.fields["tenant"].required = False
            self.fields["tenant"].help_text = "Empty: your first tenant."

    def clean(self):
        cleaned = super().clean()
        if "tenant" in self.fields and not cleaned.get("tenant"):
            cleaned["tenant"] = default_tenant(self.user)
            if cleaned["tenant"] is None:
                self.add_error("tenant", "You are a member of no tenant.")
        if self.instance.pk is None and cleaned.get("file"):
            from channels_app.attachments import AttachmentRejected, detect_attachment_type

            upload = cleaned["file"]
            try:
                detect_attachment_type(upload.file, cleaned.get("name") or upload.name, upload.size)
            except AttachmentRejected as error:
                self.add_error("file", str(error))
        return cleaned


@admin.register(Attachment)
class AttachmentAdmin(ScopedModelAdmin):
    form = AttachmentForm
    list_display = ["name", "kind", "mime_type", "size", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name"]

    delete_service = attachment_delete

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        form.user = request.user
        return form

    def get_readonly_fields(self, request, obj=None):
        return ["tenant", "file", "kind", "mime_type", "size"] if obj else []

    def save_model(self, request, obj, form, change):
        if change:
            attachment_rename(attachment=obj, name=obj.name)
            return
        upload, name = form.cleaned_data["file"], form.cleaned_data.get("name") or None
        created = attachment_create(tenant=form.cleaned_data["tenant"], uploaded_file=upload, name=name)
        obj.pk = created.pk
        obj.__dict__.update({k: v for k, v in created.__dict__.items() if not k.startswith("_")})


@admin.register(StandardResponseCategory)
class StandardResponseCategoryAdmin(ScopedModelAdmin):
    list_display = ["path", "parent", "tenant", "response_count"]
    delete_service = standard_response_category_delete
    search_fields = ["name"]
    list_filter = ["parent"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("parent").annotate(response_total=Count("responses"))

    @admin.display(description="responses", ordering="response_total")
    def response_count(self, category):
        return category.response_total

    def save_model(self, request, obj, form, change):
        standard_response_category_save(category=obj)
