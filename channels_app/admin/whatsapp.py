"""Admin for WhatsApp message templates (API.md "WhatsApp Cloud API channels"): a notification or rich
media standard response submitted for Meta's approval on a Cloud API channel, with its category, Meta's
verdict (the status, and why when rejected, paused or disabled), the id Meta gave it, and a sync from Meta.

The pages call the services of the API (`template_submit`, `templates_sync_request`) and hold to the same
rules of the rights table (`standard-response.submit`, `channel.sync_templates`): no rule of their own."""

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html

from channels_app import rights
from channels_app.admin.forms import TextRulesModelForm
from channels_app.admin.scoping import ScopedModelAdmin
from channels_app.choices import Transport
from channels_app.errors import ApplicationError
from channels_app.models import Channel, TemplateStatus, WhatsAppTemplate
from channels_app.selectors import restrict
from channels_app.services.templates import (
    CATEGORIES,
    TEMPLATE_CONTENT_TYPES,
    template_submit,
    templates_sync_request,
)

CATEGORY_HELP = (
    "Meta's category of the template: MARKETING (offers, news, invitations), UTILITY (about something the "
    "customer did or asked for: an order, a bill, an appointment), AUTHENTICATION (one-time codes). Meta may "
    "reject a template whose category does not fit its content."
)
# The service names the field it refuses; on this form it is one of these.
FORM_FIELD_OF_ERROR = {"channel": "channel", "waba_id": "channel", "category": "category",
                       "content_type": "standard_response", "structured.template.name": "standard_response"}
STATUS_COLOURS = {TemplateStatus.APPROVED: "#1a7f37", TemplateStatus.PENDING: "#9a6700"}


class TemplateSubmitForm(TextRulesModelForm):
    """Submitting is what saving this form does: the service checks and writes in one go, so it is called once
    the form's own checks pass (`_post_clean`), and its refusal becomes the error of the field it names."""

    category = forms.ChoiceField(choices=[(category, category) for category in CATEGORIES], initial="UTILITY",
                                 help_text=CATEGORY_HELP)

    class Meta:
        model = WhatsAppTemplate
        fields = ["standard_response", "channel", "category"]

    def _post_clean(self):
        super()._post_clean()
        if self.errors:
            return
        instance = self.instance
        try:
            with transaction.atomic():  # a refusal leaves nothing written
                self.submitted = template_submit(response=instance.standard_response, channel=instance.channel,
                                                 category=self.cleaned_data["category"])
        except ApplicationError as error:
            field = FORM_FIELD_OF_ERROR.get(error.field or "")
            self.add_error(field if field in self.fields else None, error.message)


@admin.register(WhatsAppTemplate)
class WhatsAppTemplateAdmin(ScopedModelAdmin):
    form = TemplateSubmitForm
    list_display = ["name", "language", "response_link", "channel", "category", "status_and_reason",
                    "template_id", "submitted_at"]
    list_filter = ["status", "category", "channel"]
    search_fields = ["name", "template_id", "standard_response__id", "standard_response__name"]
    list_select_related = ["standard_response", "channel"]
    ordering = ["-updated_at"]
    change_form_template = "admin/channels_app/whatsapptemplate/change_form.html"
    change_list_template = "admin/channels_app/whatsapptemplate/change_list.html"
    readonly_on_change = ["standard_response", "channel", "name", "language", "status_and_reason", "template_id",
                          "submitted_at", "updated_at"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["standard_response", "channel", "category"]
        return ["standard_response", "channel", "name", "language", "category", "status_and_reason", "template_id",
                "submitted_at", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if not self.has_change_permission(request, obj):
            return [*self.readonly_on_change, "category"]
        return self.readonly_on_change

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "standard_response":
            field.queryset = field.queryset.filter(content_type__in=TEMPLATE_CONTENT_TYPES)
            field.help_text = "A notification or rich media response; its structured template names it at Meta."
        elif db_field.name == "channel":
            field.queryset = field.queryset.filter(transport=Transport.WHATSAPP_CLOUD)
            field.help_text = "A WhatsApp Cloud API channel: the template is created in its WhatsApp Business Account."
        return field

    # --- who may: the API's rules ---------------------------------------------------------------------------

    def has_add_permission(self, request):
        return rights.rule("standard-response.submit").allows(request.user)

    def has_change_permission(self, request, obj=None):
        return rights.rule("standard-response.submit").allows(request.user)

    def has_delete_permission(self, request, obj=None):
        return False  # a template stays at Meta: its row follows it

    # --- what it shows --------------------------------------------------------------------------------------

    @admin.display(description="standard response", ordering="standard_response__name")
    def response_link(self, template):
        response = template.standard_response
        url = reverse("admin:channels_app_standardresponse_change", args=[response.pk])
        return format_html('<a href="{}">{}</a>', url, response.name or response.pk)

    @admin.display(description="status", ordering="status")
    def status_and_reason(self, template):
        colour = STATUS_COLOURS.get(template.status, "#b00")
        if not template.reason:
            return format_html('<b style="color: {};">{}</b>', colour, template.status)
        return format_html('<b style="color: {};">{}</b>: <span class="dms-template-reason">{}</span>', colour,
                           template.status, template.reason)

    # --- submitting (saving the form) and syncing -----------------------------------------------------------

    def save_model(self, request, obj, form, change):
        submitted = form.submitted  # written by the service when the form was checked
        obj.pk = submitted.pk
        obj.__dict__.update({k: v for k, v in submitted.__dict__.items() if not k.startswith("_")})

    def response_add(self, request, obj, post_url_continue=None):
        self._submitted(request, obj)
        return redirect(reverse("admin:channels_app_whatsapptemplate_change", args=[obj.pk]))

    def response_change(self, request, obj):
        self._submitted(request, obj)
        return redirect(reverse("admin:channels_app_whatsapptemplate_change", args=[obj.pk]))

    def _submitted(self, request, obj):
        self.message_user(request, f"{obj.name} ({obj.language}, {obj.category}) is submitted to Meta for approval "
                          f"on {obj.channel.channel_id}: its status follows Meta's answer and webhooks, or *Sync*.",
                          messages.SUCCESS)

    def get_urls(self):
        return [
            path("sync/", self.guarded(self.sync_view, "admin:channels_app_whatsapptemplate_sync"),
                 name="channels_app_whatsapptemplate_sync"),
            *super().get_urls(),
        ]

    def sync_view(self, request):
        """Ask Meta for the templates of a channel's WABA (`?channel=<channel id>`), as the API's sync does."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        channel_id = request.GET.get("channel") or request.POST.get("channel", "")
        channel = restrict(Channel.objects.filter(channel_id=channel_id), request.user).first()
        back = request.POST.get("next") or reverse("admin:channels_app_whatsapptemplate_changelist")
        if not back.startswith("/admin/"):
            back = reverse("admin:channels_app_whatsapptemplate_changelist")
        if channel is None:
            self.message_user(request, f"Unknown channel {channel_id!r}.", messages.ERROR)
            return redirect(back)
        try:
            templates_sync_request(channel=channel)
        except ApplicationError as error:
            self.message_user(request, f"Not synced: {error.message}", messages.ERROR)
            return redirect(back)
        self.message_user(request, f"Sync with Meta queued for {channel.channel_id}: the statuses change once "
                          "Meta has answered (reload in a moment).", messages.SUCCESS)
        return redirect(back)

    def _sync_context(self, request) -> dict:
        allowed = rights.rule("admin:channels_app_whatsapptemplate_sync").allows(request.user)
        return {"sync_url": reverse("admin:channels_app_whatsapptemplate_sync"), "can_sync": allowed}

    def changelist_view(self, request, extra_context=None):
        channels = restrict(Channel.objects.filter(transport=Transport.WHATSAPP_CLOUD).exclude(waba_id=""),
                            request.user).order_by("channel_id").values_list("channel_id", flat=True)
        return super().changelist_view(request, {**(extra_context or {}), **self._sync_context(request),
                                                 "sync_channels": list(channels)})

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context.update(self._sync_context(request))
        return super().render_change_form(request, context, add, change, form_url, obj)
