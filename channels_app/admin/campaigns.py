"""Admin for campaigns: audience upload with its validation report, a live
progress bar and chart, the state buttons and the results export. Every
change goes through the campaign services."""

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html

from channels_app.admin.forms import TextRulesModelForm
from channels_app.admin.scoping import ScopedModelAdmin
from channels_app.errors import ApplicationError
from channels_app.models import Campaign
from channels_app.services import campaigns as campaign_services
from channels_app.validators import validate_queue_key

TRANSITIONS = ("start", "pause", "resume", "cancel")


class CampaignForm(TextRulesModelForm):
    audience = forms.FileField(
        required=False,
        help_text="CSV, one recipient a row: a client_id column, then Contact.<name> and CustomProperties.<name> "
        "columns for the field codes of the standard response. Rows are checked before they are stored.",
    )

    class Meta:
        model = Campaign
        fields = ["name", "channel", "standard_response", "chat_queue_key", "terminate_sessions", "rate_per_second",
                  "start_at"]

    def clean(self):
        cleaned = super().clean()
        key, channel = cleaned.get("chat_queue_key"), cleaned.get("channel")
        if key and channel is not None:
            try:
                validate_queue_key(key, tenant_id=channel.tenant_id)
            except forms.ValidationError as error:
                self.add_error("chat_queue_key", error)
        return cleaned

    def clean_audience(self):
        upload = self.cleaned_data.get("audience")
        if upload is None:
            return None
        try:
            return campaign_services.audience_rows_from_csv(upload.read().decode("utf-8-sig"))
        except UnicodeDecodeError as error:
            raise forms.ValidationError("The file is not UTF-8 text.") from error
        except ApplicationError as error:
            raise forms.ValidationError(error.message) from error




@admin.register(Campaign)
class CampaignAdmin(ScopedModelAdmin):
    form = CampaignForm
    list_display = ["name", "channel", "state", "progress", "rate_per_second", "start_at", "created_at"]
    list_filter = ["state", "channel"]
    search_fields = ["name"]
    list_select_related = ["channel"]
    change_form_template = "admin/channels_app/campaign/change_form.html"
    readonly_fields = ["state", "started_at", "finished_at"]

    def get_fields(self, request, obj=None):
        fields = ["name", "channel", "standard_response", "chat_queue_key", "terminate_sessions", "rate_per_second",
                  "start_at", "audience"]
        return fields + (["state", "started_at", "finished_at"] if obj else [])

    def get_readonly_fields(self, request, obj=None):
        if obj and obj.state not in ("draft", "scheduled"):
            return ["name", "channel", "standard_response", "chat_queue_key", "terminate_sessions", "rate_per_second",
                    "start_at", "state", "started_at", "finished_at"]
        return self.readonly_fields

    @admin.display(description="progress")
    def progress(self, campaign):
        counts = campaign_services.campaign_counts(campaign=campaign)
        done = counts["total"] - counts["pending"]
        percent = round(100 * done / counts["total"]) if counts["total"] else 0
        return format_html(
            '<progress max="100" value="{}"></progress> {} / {} ({} delivered, {} failed, {} refused)',
            percent, done, counts["total"], counts["delivered"], counts["failed"], counts["refused"],
        )

    delete_service = campaign_services.campaign_delete

    def has_delete_permission(self, request, obj=None):
        # A running or scheduled campaign is cancelled first (campaign_delete says so too).
        return super().has_delete_permission(request, obj) and (
            obj is None or obj.state not in ("running", "scheduled")
        )

    def save_model(self, request, obj, form, change):
        rows = form.cleaned_data.get("audience")
        if not change:
            created, report = campaign_services.campaign_create(
                name=obj.name, channel=obj.channel, standard_response=obj.standard_response, rows=rows or [],
                rate_per_second=obj.rate_per_second, start_at=obj.start_at,
                terminate_sessions=obj.terminate_sessions, chat_queue_key=obj.chat_queue_key,
                created_by=request.user,
            )
            obj.pk = created.pk
            obj.__dict__.update({k: v for k, v in created.__dict__.items() if not k.startswith("_")})
            if rows is not None:
                self._report(request, report)
            return
        try:
            campaign_services.campaign_update(
                campaign=obj, name=obj.name, standard_response=obj.standard_response, channel=obj.channel,
                rate_per_second=obj.rate_per_second, start_at=obj.start_at,
                terminate_sessions=obj.terminate_sessions, chat_queue_key=obj.chat_queue_key,
            )
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)
            return
        if rows is not None:
            try:
                report = campaign_services.campaign_add_recipients(campaign=obj, rows=rows)
            except ApplicationError as error:
                self.message_user(request, error.message, messages.ERROR)
                return
            self._report(request, report)

    def _report(self, request, report):
        self.message_user(
            request,
            f"Audience: {report.accepted} recipient(s) stored, {len(report.duplicates)} duplicate row(s) sent once, "
            f"{len(report.rejected)} row(s) rejected.",
            messages.SUCCESS if not report.rejected else messages.WARNING,
        )
        for rejected in report.rejected[:50]:
            self.message_user(
                request, f"Row {rejected['row']} ({rejected['client_id'] or 'no client id'}): "
                f"{' '.join(rejected['errors'])}", messages.WARNING,
            )
        if len(report.rejected) > 50:
            self.message_user(request, f"... and {len(report.rejected) - 50} more rejected row(s).", messages.WARNING)

    def get_urls(self):
        return [
            path("<int:pk>/progress.json", self.guarded(self.progress_view, "admin:channels_app_campaign_progress"),
                 name="channels_app_campaign_progress"),
            path("<int:pk>/results.csv", self.guarded(self.results_view, "admin:channels_app_campaign_results"),
                 name="channels_app_campaign_results"),
            path(
                "<int:pk>/transition/<str:action>/",
                self.guarded(self.transition_view, "admin:channels_app_campaign_transition"),
                name="channels_app_campaign_transition",
            ),
            *super().get_urls(),
        ]

    def progress_view(self, request, pk):
        campaign = get_object_or_404(self.get_queryset(request), pk=pk)
        return JsonResponse({
            "state": campaign.state,
            **campaign_services.campaign_counts(campaign=campaign),
            "timeline": campaign_services.campaign_timeline(campaign=campaign),
        })

    def results_view(self, request, pk):
        campaign = get_object_or_404(self.get_queryset(request), pk=pk)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}-results.csv"'
        campaign_services.campaign_results_csv(campaign=campaign, out=response)
        return response

    def transition_view(self, request, pk, action):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if action not in TRANSITIONS:
            return HttpResponse(status=404)
        get_object_or_404(self.get_queryset(request), pk=pk)
        try:
            campaign = campaign_services.campaign_transition(campaign_id=pk, action=action)
            self.message_user(request, f"Campaign {campaign.name}: {campaign.state}.", messages.SUCCESS)
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)
        return redirect(reverse("admin:channels_app_campaign_change", args=[pk]))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["campaign_progress_url"] = reverse("admin:channels_app_campaign_progress", args=[obj.pk])
            context["campaign_results_url"] = reverse("admin:channels_app_campaign_results", args=[obj.pk])
            context["campaign_actions"] = [
                (name, reverse("admin:channels_app_campaign_transition", args=[obj.pk, name]))
                for name in TRANSITIONS
                if obj.state in campaign_services.ALLOWED[name][0]
            ]
        return super().render_change_form(request, context, add, change, form_url, obj)
