"""Admin for segments (API.md, "Audiences, send windows and variants"): the filter checked by the service, and
on a segment's page how many contacts it holds now with the first ten of them. Saved and deleted through
services.segments."""

from django import forms
from django.contrib import admin
from django.utils.html import format_html, format_html_join

from channels_app.admin.forms import TextRulesModelForm
from channels_app.admin.scoping import ScopedModelAdmin
from channels_app.errors import ApplicationError, InvalidFields
from channels_app.models import Segment
from channels_app.services.segments import segment_delete, segment_filter_clean, segment_preview, segment_save

FILTER_HELP = (
    'A JSON object; every part given must hold. {"attributes": {"tier": "gold", "plan": {"in": ["a", "b"]}}, '
    '"channels": ["channel-whatsapp-REAL"], "countries": ["US", "NL"], "last_message_after": "2026-01-01", '
    '"last_message_before": "2026-06-01T00:00:00Z"}. Attribute operators: eq (the default), ne, in, exists. '
    "The time of the last message is kept to the hour."
)


class SegmentForm(TextRulesModelForm):
    class Meta:
        model = Segment
        fields = ["name", "tenant", "filter"]
        help_texts = {"filter": FILTER_HELP}

    def clean(self):
        cleaned = super().clean()
        tenant = cleaned.get("tenant") or (self.instance.tenant if self.instance.tenant_id else None)
        if tenant is not None and "filter" in cleaned and "filter" not in self.errors:
            try:
                cleaned["filter"] = segment_filter_clean(tenant=tenant, value=cleaned["filter"])
            except InvalidFields as error:
                for name, messages in error.errors.items():
                    self.add_error("filter", forms.ValidationError(f"{name}: {' '.join(messages)}"))
        return cleaned


@admin.register(Segment)
class SegmentAdmin(ScopedModelAdmin):
    form = SegmentForm
    list_display = ["name", "tenant", "filter_summary", "updated_at"]
    list_filter = ["tenant"]
    search_fields = ["name"]
    delete_service = segment_delete

    def get_fields(self, request, obj=None):
        return ["name", "tenant", "filter"] + (["contacts"] if obj is not None else [])

    def get_readonly_fields(self, request, obj=None):
        return ["tenant", "contacts"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        try:
            segment_save(segment=obj, filter_value=form.cleaned_data.get("filter", {}), user=request.user)
        except ApplicationError as error:  # the name taken meanwhile: the form checked the rest
            self.message_user(request, error.message, level="ERROR")

    @admin.display(description="filter")
    def filter_summary(self, segment) -> str:
        parts = []
        kept = segment.filter or {}
        for name, condition in (kept.get("attributes") or {}).items():
            ((operator, operand),) = condition.items()
            parts.append(f"{name} {operator} {operand}")
        for key in ("channels", "countries"):
            if kept.get(key):
                parts.append(f"{key}: {', '.join(kept[key])}")
        for key, word in (("last_message_after", "wrote after"), ("last_message_before", "wrote before")):
            if kept.get(key):
                parts.append(f"{word} {kept[key][:16]}")
        return "; ".join(parts) or "every contact"

    @admin.display(description="contacts now")
    def contacts(self, segment):
        preview = segment_preview(segment=segment)
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((row["client_id"], f"{row['first_name']} {row['last_name']}".strip() or "-", row["country"] or "-",
              row["last_message_at"] or "-", row["id"]) for row in preview["sample"]),
        )
        return format_html(
            '<p><strong>{}</strong> contact(s); a campaign built from this segment takes those it holds when it '
            "starts. The first ten:</p><table><thead><tr><th>client id</th><th>name</th><th>country</th>"
            "<th>last message (to the hour)</th><th>contact id</th></tr></thead><tbody>{}</tbody></table>",
            f"{preview['count']:,}", rows,
        )
