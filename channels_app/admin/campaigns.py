"""Admin for campaigns: audience upload with its validation report, a live
progress bar and chart, the state buttons and the results export. Every
change goes through the campaign services."""

from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import display_for_value
from django.http import HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import escape, format_html

from channels_app.admin.forms import SendWindowField, TextRulesModelForm
from channels_app.admin.scoping import ScopedModelAdmin, ScopedTabularInline
from channels_app.errors import ApplicationError, InvalidFields
from channels_app.models import Campaign, CampaignVariant
from channels_app.models.campaigns import VARIANTS_MAX
from channels_app.services import campaign_reports
from channels_app.services import campaigns as campaign_services
from channels_app.services.send_windows import (
    RECIPIENT,
    send_window_from_stored,
    send_window_parse,
    waiting_recipients,
)
from channels_app.services.variants import campaign_variants_set, variants_parse
from channels_app.validators import validate_queue_key

TRANSITIONS = ("start", "pause", "resume", "cancel")
RECIPIENTS_PER_PAGE = 50
OUTCOME_WORDS = {"total": "reached", "refused": "refused", "sent": "sent", "delivered": "delivered", "read": "who read",
                 "replied": "who replied", "opted_out": "who opted out", "failed": "failed", "pending": "pending"}


def _position(variant: str) -> int:
    return campaign_reports._variant_position(variant)
REFUSED_REASONS_SHOWN = 10
REFUSED_ROWS_SHOWN = 20


EDITABLE_STATES = ("draft", "scheduled")
SAMPLE_CSV = (
    "client_id,Contact.FirstName,Contact.LastName,CustomProperties.Amount\r\n"
    "+15550100001,Ada,Lovelace,$42.00\r\n"
    "+15550100002,Grace,Hopper,$17.50\r\n"
)


class CampaignForm(TextRulesModelForm):
    audience = forms.FileField(
        required=False,
        # The admin renders help text as HTML: "<name>" would vanish as a tag.
        help_text=escape(
            "CSV, one recipient a row: a client_id column, then Contact.<name> and CustomProperties.<name> "
            "columns for the field codes of the standard response. Rows are checked before they are stored; "
            "the report of the last upload stays on this page."
        ),
    )

    class Meta:
        model = Campaign
        fields = ["name", "channel", "standard_response", "chat_queue_key", "terminate_sessions", "rate_per_second",
                  "start_at", "segment", "send_window"]
        help_texts = {"send_window": (
            "Each recipient is sent to only inside this window, in its own zone (\"recipient\": its contact's "
            "timezone attribute, else its phone number's, else the tenant's) or in the zone named (an IANA name "
            "such as Europe/Amsterdam). A window whose end is earlier than its start runs across midnight. "
            "Leave both times empty to send at any time.")}
        field_classes = {"send_window": SendWindowField}

    def clean_send_window(self):
        value = self.cleaned_data.get("send_window")
        try:
            window = send_window_parse(value or None)
        except InvalidFields as error:
            raise forms.ValidationError([f"{name}: {' '.join(messages)}" for name, messages in error.errors.items()]
                                        ) from error
        return window.as_dict() if window else None

    def clean(self):
        cleaned = super().clean()
        segment, channel = cleaned.get("segment"), cleaned.get("channel")
        if segment is not None and channel is not None and segment.tenant_id != channel.tenant_id:
            self.add_error("segment", "The segment is not of the channel's tenant.")
        if segment is not None and cleaned.get("audience") is not None:
            self.add_error("audience", "A campaign takes its audience from a segment or from a file, not both.")
        state = self.instance.state if self.instance.pk else "draft"
        if cleaned.get("audience") is not None and state not in EDITABLE_STATES:
            self.add_error("audience", f"Recipients cannot be added to a {state} campaign: create a new campaign.")
        audience, response = cleaned.get("audience"), cleaned.get("standard_response")
        if audience is not None and response is not None and "audience" not in self.errors:
            if unfillable := campaign_services.audience_unfillable_codes(response=response, columns=audience.columns):
                self.add_error("audience", f"The standard response has field codes no row can fill: "
                                           f"{', '.join(unfillable)}. Add the columns, or choose another response.")
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
            return campaign_services.audience_csv_open(binary=upload)
        except ApplicationError as error:
            raise forms.ValidationError(error.message) from error


class VariantFormSet(forms.BaseInlineFormSet):
    """The variants as the API takes them (services/variants.variants_parse): none, or two to five whose shares
    add up to 100, responses of the channel's tenant that its media can send."""

    def entries(self) -> list[dict]:
        return [{"standard_response": form.cleaned_data["standard_response"].pk, "share": form.cleaned_data["share"]}
                for form in self.forms
                if form.cleaned_data and not form.cleaned_data.get("DELETE") and form.cleaned_data.get(
                    "standard_response") is not None]

    def clean(self):
        super().clean()
        if any(form.errors for form in self.forms):
            return
        entries = self.entries()
        if entries and self.instance.channel_id:
            try:
                variants_parse(channel=self.instance.channel, entries=entries)
            except ApplicationError as error:
                raise forms.ValidationError(error.message) from error


class CampaignVariantInline(ScopedTabularInline):
    """The campaign's variants: changed with the campaign while it is a draft (or scheduled), shown after."""

    model = CampaignVariant
    formset = VariantFormSet
    fields = ["label", "standard_response", "share"]
    readonly_fields = ["label"]
    extra = 0
    max_num = VARIANTS_MAX
    verbose_name = "variant"
    verbose_name_plural = ("variants: 2 to 5 standard responses with shares adding up to 100, each recipient sent "
                           "one (none: every recipient gets the standard response above)")

    @admin.display(description="variant")
    def label(self, variant):
        return variant.label if variant.pk else "-"

    # The variants are part of the campaign: who may add or change the campaign may set them.
    def _editable(self, request, obj) -> bool:
        if obj is None:
            return request.user.has_perm("channels_app.add_campaign")
        return obj.state in EDITABLE_STATES and request.user.has_perm("channels_app.change_campaign")

    def has_add_permission(self, request, obj=None):
        return self._editable(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(request, obj)

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("channels_app.view_campaign")


def chart_svg(timeline: dict, width: int = 720, height: int = 220) -> str:
    """Sends and deliveries per second as an SVG line chart with its axes:
    x in seconds since the first send, y in messages per second."""
    series = [("sent", "#417690"), ("delivered", "#2e9e44")]
    points = {name: [(_seconds(at), count) for at, count in timeline.get(name, [])] for name, _ in series}
    every = [p for name, _ in series for p in points[name]]
    lines = {name: _with_zeros(points[name]) for name, _ in series}
    left, right, top, bottom = 48, 16, 14, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
             f'role="img" aria-label="messages per second" class="campaign-chart" font-size="11" '
             f'font-family="sans-serif">']
    if not every:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#666">'
                     "Nothing sent yet.</text></svg>")
        return "".join(parts)
    t0 = min(t for t, _ in every)
    span = max(max(t for t, _ in every) - t0, 10.0)  # at least ten seconds: a short campaign is not a smear
    peak = max(max(n for _, n in every), 1)
    y_max = _nice(peak)

    def x(t):
        return left + plot_w * (t - t0) / span

    def y(n):
        return top + plot_h - plot_h * n / y_max

    for i in range(5):  # horizontal grid lines with the y labels
        value = y_max * i / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                     f'stroke="#ddd"/><text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end" '
                     f'fill="#444">{value:g}</text>')
    for i in range(6):  # x ticks
        t = t0 + span * i / 5
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" '
                     f'stroke="#444"/><text x="{x(t):.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                     f'fill="#444">{t - t0:.0f}</text>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#444"/>'
                 f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#444"/>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle" fill="#444">'
                 "seconds since the first send</text>")
    parts.append(f'<text x="12" y="{top + plot_h / 2}" text-anchor="middle" fill="#444" '
                 f'transform="rotate(-90 12 {top + plot_h / 2})">messages / second</text>')
    for name, color in series:
        line = " ".join(f"{x(t):.1f},{y(n):.1f}" for t, n in lines[name])
        if line:
            parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>')
            parts.extend(f'<circle cx="{x(t):.1f}" cy="{y(n):.1f}" r="3.5" fill="{color}"/>' for t, n in points[name])
    parts.append("</svg>")
    return "".join(parts)


def _with_zeros(points: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """The points of a line with the seconds nothing was sent drawn as zero: a second without messages is not
    in the timeline, and a line from one send to the next after a pause drew the pause as sending."""
    line: list[tuple[float, int]] = []
    for t, n in points:
        if line and t - line[-1][0] > 1:
            last = line[-1][0]
            line.append((last + 1, 0))
            if t - 1 > last + 1:
                line.append((t - 1, 0))
        line.append((t, n))
    return line


def _seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def _nice(value: float) -> float:
    """The smallest 1, 2, 5 x 10^n at least `value` (a round top for the y axis)."""
    magnitude = 1.0
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return value

@admin.register(Campaign)
class CampaignAdmin(ScopedModelAdmin):
    form = CampaignForm
    list_display = ["name", "channel", "state", "progress", "rate_per_second", "start_at", "created_at"]
    list_filter = ["state", "channel"]
    search_fields = ["name"]
    list_select_related = ["channel"]
    change_form_template = "admin/channels_app/campaign/change_form.html"
    readonly_fields = ["state", "started_at", "finished_at"]
    inlines = [CampaignVariantInline]

    def get_fields(self, request, obj=None):
        fields = ["name", "channel", "standard_response", "chat_queue_key", "terminate_sessions", "rate_per_second",
                  "start_at", "segment", "send_window", "audience"]
        if obj and (obj.state not in EDITABLE_STATES or obj.segment_id):
            fields.remove("audience")  # nothing can be added any more, or the audience is the segment's
        if obj and obj.state not in EDITABLE_STATES:
            fields[fields.index("send_window")] = "send_window_text"
        return fields + (["state", "started_at", "finished_at"] if obj else [])

    def get_readonly_fields(self, request, obj=None):
        if obj and obj.state not in ("draft", "scheduled"):
            return ["name", "channel", "standard_response", "chat_queue_key", "terminate_sessions", "rate_per_second",
                    "start_at", "segment", "send_window_text", "state", "started_at", "finished_at"]
        return self.readonly_fields

    @admin.display(description="send window")
    def send_window_text(self, campaign):
        window = send_window_from_stored(campaign.send_window)
        if window is None:
            return "Any time"
        days = window.as_dict()["days"]
        days = "every day" if len(days) == 7 else "on " + ", ".join(day.capitalize() for day in days)
        zone = "each recipient's own zone" if window.zone == RECIPIENT else window.zone
        return f"{window.start:%H:%M} to {window.end:%H:%M}, {days}, in {zone}"

    @admin.display(description="progress")
    def progress(self, campaign):
        counts = campaign_services.campaign_counts(campaign=campaign)
        done = counts["total"] - counts["pending"]
        percent = round(100 * done / counts["total"]) if counts["total"] else 0
        waiting = waiting_recipients(campaign=campaign, now=timezone.now())
        return format_html(
            '<progress max="100" value="{}"></progress> {} / {} ({} delivered, {} failed, {} refused{})',
            percent, done, counts["total"], counts["delivered"], counts["failed"], counts["refused"],
            f", {waiting} waiting for their send window" if waiting else "",
        )

    delete_service = campaign_services.campaign_delete

    def has_delete_permission(self, request, obj=None):
        # A running or scheduled campaign is cancelled first (campaign_delete says so too).
        return super().has_delete_permission(request, obj) and (
            obj is None or obj.state not in ("running", "scheduled")
        )

    def save_model(self, request, obj, form, change):
        audience = form.cleaned_data.get("audience")
        if not change:
            created, report = campaign_services.campaign_create(
                name=obj.name, channel=obj.channel, standard_response=obj.standard_response, audience=audience,
                rate_per_second=obj.rate_per_second, start_at=obj.start_at,
                terminate_sessions=obj.terminate_sessions, chat_queue_key=obj.chat_queue_key,
                created_by=request.user, segment=obj.segment, send_window=obj.send_window,
            )
            obj.pk = created.pk
            obj.__dict__.update({k: v for k, v in created.__dict__.items() if not k.startswith("_")})
            if audience is not None:
                self._report(request, obj, form, report)
            return
        if obj.state not in EDITABLE_STATES:
            return  # every setting is read-only, and the form refuses an audience
        try:
            campaign_services.campaign_update(
                campaign=obj, name=obj.name, standard_response=obj.standard_response, channel=obj.channel,
                rate_per_second=obj.rate_per_second, start_at=obj.start_at,
                terminate_sessions=obj.terminate_sessions, chat_queue_key=obj.chat_queue_key,
                segment=obj.segment, send_window=obj.send_window,
            )
        except ApplicationError as error:
            self._refuse(request, error.message)
            return
        if audience is not None:
            try:
                report = campaign_services.campaign_add_recipients(campaign=obj, audience=audience)
            except ApplicationError as error:
                self._refuse(request, error.message)
                return
            self._report(request, obj, form, report)

    def get_inline_instances(self, request, obj=None):
        inlines = super().get_inline_instances(request, obj)
        if request.method == "POST" and "variants-TOTAL_FORMS" not in request.POST:
            # A form posted without the variants' rows (a script's, a page from before variants): they stay as
            # they are, instead of the whole form refused for a missing management form.
            inlines = [inline for inline in inlines if not isinstance(inline, CampaignVariantInline)]
        return inlines

    def save_related(self, request, form, formsets, change):
        """The variants go through their service (services/variants.py), never straight into their table."""
        others = []
        for formset in formsets:
            if isinstance(formset, VariantFormSet):
                # (the change message reads what a formset saved: here the service saves them)
                formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
                if getattr(request, "_campaign_refused", False) or form.instance.state not in EDITABLE_STATES:
                    continue
                wanted = formset.entries()
                kept = [{"standard_response": v.standard_response_id, "share": v.share}
                        for v in form.instance.variants.all()]
                if wanted != kept:
                    try:
                        campaign_variants_set(campaign=form.instance, entries=wanted)
                    except ApplicationError as error:
                        self._refuse(request, error.message)
            else:
                others.append(formset)
        form.save_m2m()
        for formset in others:
            self.save_formset(request, form, formset, change=change)

    def _refuse(self, request, message: str) -> None:
        # Only the error: response_change then leaves out "changed successfully".
        self.message_user(request, message, messages.ERROR)
        request._campaign_refused = True

    def response_change(self, request, obj):
        if getattr(request, "_campaign_refused", False):
            return redirect(reverse("admin:channels_app_campaign_change", args=[obj.pk]))
        return super().response_change(request, obj)

    def _report(self, request, campaign, form, report):
        if report.state == campaign_services.LOADING:
            self.message_user(request, f"Audience: about {report.lines:,} rows are being read in the background; "
                                       "the upload report below shows how far.", messages.SUCCESS)
            return
        self.message_user(
            request,
            f"Audience: {report.accepted} recipient(s) stored, {report.duplicates_total} duplicate row(s) sent once, "
            f"{report.rejected_total} row(s) rejected — see the upload report on the campaign's page.",
            messages.SUCCESS if not report.rejected_total else messages.WARNING,
        )

    def get_urls(self):
        return [
            path("sample.csv", self.guarded(self.sample_view, "admin:channels_app_campaign_sample"),
                 name="channels_app_campaign_sample"),
            path("<int:pk>/progress.json", self.guarded(self.progress_view, "admin:channels_app_campaign_progress"),
                 name="channels_app_campaign_progress"),
            path("<int:pk>/results.csv", self.guarded(self.results_view, "admin:channels_app_campaign_results"),
                 name="channels_app_campaign_results"),
            path("<int:pk>/recipients/", self.guarded(self.recipients_view, "admin:channels_app_campaign_recipients"),
                 name="channels_app_campaign_recipients"),
            path(
                "<int:pk>/transition/<str:action>/",
                self.guarded(self.transition_view, "admin:channels_app_campaign_transition"),
                name="channels_app_campaign_transition",
            ),
            *super().get_urls(),
        ]

    def sample_view(self, request):
        response = HttpResponse(SAMPLE_CSV, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="campaign-audience-sample.csv"'
        return response

    def progress_view(self, request, pk):
        """The live part of the campaign's page: counts, chart, state, the buttons the state allows and, when
        asked (`?refused=1`: the page saw the refused count change), the refused recipients' module."""
        campaign = get_object_or_404(self.get_queryset(request), pk=pk)
        timeline = campaign_services.campaign_timeline(campaign=campaign)
        body = {
            "state": campaign.state,
            "title": str(campaign),
            **campaign_services.campaign_counts(campaign=campaign),
            "waiting": waiting_recipients(campaign=campaign, now=timezone.now()),
            "timeline": timeline,
            "chart": chart_svg(timeline),
            "actions": [name for name in TRANSITIONS if campaign.state in campaign_services.ALLOWED[name][0]],
            "upload": {key: (campaign.upload_report or {}).get(key) for key in ("state", "rows_read", "lines")},
            "fields": {"state": campaign.get_state_display(),
                       **{name: display_for_value(getattr(campaign, name), "-") for name in ("started_at",
                                                                                             "finished_at")}},
        }
        if request.GET.get("refused"):
            body["refused_html"] = render_to_string(
                "admin/channels_app/campaign/refused.html", {"refusals": self._refusals(campaign)}, request=request)
        return JsonResponse(body)

    @staticmethod
    def _refusals(campaign):
        return campaign_services.campaign_refusals(campaign=campaign, reasons=REFUSED_REASONS_SHOWN,
                                                   rows=REFUSED_ROWS_SHOWN)

    def results_view(self, request, pk):
        campaign = get_object_or_404(self.get_queryset(request), pk=pk)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}-results.csv"'
        campaign_services.campaign_results_csv(campaign=campaign, out=response)
        return response

    def recipients_view(self, request, pk):
        """The recipients behind a figure of the campaign's report (`outcome`, `reason`, `variant`), paged: the
        admin's face of `GET /api/campaigns/{id}/recipients/?outcome=...`."""
        from django.core.paginator import Paginator
        from django.template.response import TemplateResponse

        campaign = get_object_or_404(self.get_queryset(request), pk=pk)
        query = {name: request.GET.get(name) or None for name in ("outcome", "reason", "variant")}
        try:
            recipients = campaign_reports.campaign_recipients_behind(campaign=campaign, **query)
        except ApplicationError as error:
            return HttpResponse(error.message, status=400, content_type="text/plain; charset=utf-8")
        page = Paginator(recipients.select_related("message").order_by("row_number"), RECIPIENTS_PER_PAGE).get_page(
            request.GET.get("page"))
        labels = {v.position: v.label for v in campaign.variants.all()}
        words = OUTCOME_WORDS.get(query["outcome"] or "", "")
        described = " · ".join([f"recipients {words}".strip(),
                                *([f"variant {labels.get(_position(query['variant']), query['variant'])}"]
                                  if query["variant"] else []),  # (a valid one: checked above)
                                *([f"reason {query['reason']}"] if query["reason"] else [])])
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "original": campaign,
            "title": f"{campaign.name}: {described}", "page": page, "labels": labels,
            "campaign_url": reverse("admin:channels_app_campaign_change", args=[campaign.pk]),
            "query": urlencode({name: value for name, value in query.items() if value}),
        }
        return TemplateResponse(request, "admin/channels_app/campaign/recipients.html", context)

    def _campaign_report(self, request, campaign):
        """The campaign report's figures over the campaign's whole life (for users who may read reports), each
        with the link to its recipients."""
        if not request.user.has_perm("channels_app.view_reports") or campaign.started_at is None:
            return None  # (a campaign not started has reached nobody: no figures yet)
        from django.utils import timezone

        now = timezone.now()
        start = max(campaign.created_at, now - campaign_reports.LONGEST_PERIOD)
        report = campaign_reports.campaign_report(campaign=campaign, period=campaign_reports.Period(start, now))
        base = reverse("admin:channels_app_campaign_recipients", args=[campaign.pk])

        def cells(figures, variant=None):
            suffix = "" if variant is None else f"&variant={variant}"
            return [(figures[name], f"{base}?outcome={name}{suffix}") for name in campaign_reports.FIGURES]

        def reasons(figures, variant=None):
            suffix = "" if variant is None else f"&variant={variant}"
            return [(reason, n, f"{base}?{urlencode({'outcome': 'failed', 'reason': reason})}{suffix}")
                    for reason, n in figures["failed_by_reason"].items()]

        rows = [{"label": "All", "response": "", "share": "", "cells": cells(report),
                 "reasons": reasons(report)}]
        names = dict(campaign.variants.values_list("standard_response_id", "standard_response__name"))
        rows += [{"label": v["label"], "response": f"{names.get(v['standard_response'], '')} "
                  f"({v['standard_response']})", "share": f"{v['share']} %",
                  "cells": cells(v, v["variant"]), "reasons": reasons(v, v["variant"])}
                 for v in report["variants"]]
        from django.utils.dateparse import parse_datetime

        as_of = parse_datetime(report["as_of"]) if report["as_of"] else None
        return {"figures": campaign_reports.FIGURES, "rows": rows, "as_of": as_of}

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
        context["campaign_sample_url"] = reverse("admin:channels_app_campaign_sample")
        if obj is not None:
            context["upload_report"] = report = obj.upload_report or None
            if report:  # refused and repeated rows in one list, in row order
                context["upload_rows"] = sorted(
                    [*({**row, "repeated": False} for row in report.get("rejected", [])),
                     *({**row, "repeated": True} for row in report.get("duplicate_rows", []))],
                    key=lambda row: row["row"])
            context["campaign_progress_url"] = reverse("admin:channels_app_campaign_progress", args=[obj.pk])
            context["campaign_results_url"] = reverse("admin:channels_app_campaign_results", args=[obj.pk])
            # Every button is on the page, those the state does not allow hidden: the page shows the ones of
            # the state it polls (a campaign that completes shows its final buttons without a reload).
            context["campaign_actions"] = [
                (name, reverse("admin:channels_app_campaign_transition", args=[obj.pk, name]),
                 obj.state in campaign_services.ALLOWED[name][0])
                for name in TRANSITIONS
            ]
            context["refusals"] = self._refusals(obj)
            context["campaign_report"] = self._campaign_report(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)
