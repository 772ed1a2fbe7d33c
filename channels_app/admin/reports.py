"""The admin's *Reports* page (API.md, "Reports"): the conversation and delivery reports of a period, as
charts (plain SVG, labelled axes) and tables whose every figure links to its rows (the admin's interaction
and message lists, filtered as the figure counts them; a campaign's recipients). Needs
`channels_app.view_reports` (rights table: `admin:channels_app_reports`)."""

from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Subquery
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import escape

from channels_app import rights
from channels_app.errors import InvalidParameter
from channels_app.models import InteractionState, Message, MessageDirection, ReportDimension
from channels_app.selectors import campaign_list
from channels_app.services.campaigns import campaign_counts
from channels_app.services.reports import (
    CONVERSATION_GROUPS,
    Period,
    conversations_report,
    deliveries_report,
    period_parse,
)
from channels_app.services.rollups import reports_folded_until

QUICK_PERIODS = [("24 hours", timedelta(hours=24)), ("7 days", timedelta(days=7)), ("30 days", timedelta(days=30))]
CHART_WIDTH, BAR_HEIGHT, LABEL_WIDTH = 600, 20, 190
LABEL_CHARACTERS = 28  # what fits in LABEL_WIDTH at the chart's font size
CAMPAIGNS_SHOWN = 20
# What the message list lets the drill-down filter on beyond its own filters (admin/conversations.py).
REPORT_MESSAGE_LOOKUPS = frozenset({
    "interaction__created_at__gte", "interaction__created_at__lt", "interaction__queue__exact",
    "interaction__channel__id__exact", "interaction__assigned_to__id__exact", "interaction__assigned_to__isnull",
    "interaction__disposition__exact",
})


def bar_chart(*, title: str, rows: list[tuple[str, list[float | None]]], series: list[str], unit: str) -> str:
    """A horizontal bar chart in SVG: one group a row, one bar per series, the value axis labelled in `unit`."""
    values = [value for _, figures in rows for value in figures if value]
    top = max(values, default=1) or 1
    plot = CHART_WIDTH - LABEL_WIDTH - 60
    height = 50 + len(rows) * BAR_HEIGHT * len(series) + len(rows) * 6 + 40
    parts = [f'<svg class="dms-chart" role="img" aria-label="{escape(title)}" width="{CHART_WIDTH}" '
             f'height="{height}" viewBox="0 0 {CHART_WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">',
             f'<title>{escape(title)}</title>']
    y = 44
    for label, figures in rows:
        short = label if len(label) <= LABEL_CHARACTERS else label[: LABEL_CHARACTERS - 1] + "\u2026"
        parts.append(f'<text x="{LABEL_WIDTH - 8}" y="{y + BAR_HEIGHT * len(series) / 2 + 4}" text-anchor="end" '
                     f'class="dms-chart-label">{escape(short)}<title>{escape(label)}</title></text>')
        for index, value in enumerate(figures):
            width = 0 if not value else max(plot * value / top, 1)
            parts.append(f'<rect x="{LABEL_WIDTH}" y="{y}" width="{width:.1f}" height="{BAR_HEIGHT - 4}" '
                         f'class="dms-bar dms-bar-{index}"><title>{escape(series[index])}: {value}</title></rect>')
            parts.append(f'<text x="{LABEL_WIDTH + width + 4:.1f}" y="{y + BAR_HEIGHT - 8}" class="dms-chart-value">'
                         f'{"-" if value is None else f"{value:g}"}</text>')
            y += BAR_HEIGHT
        y += 6
    axis_y = y + 4
    parts.append(f'<line x1="{LABEL_WIDTH}" y1="38" x2="{LABEL_WIDTH}" y2="{axis_y}" class="dms-axis"/>')
    parts.append(f'<line x1="{LABEL_WIDTH}" y1="{axis_y}" x2="{LABEL_WIDTH + plot}" y2="{axis_y}" class="dms-axis"/>')
    for step in range(5):
        x = LABEL_WIDTH + plot * step / 4
        parts.append(f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle" class="dms-chart-tick">'
                     f'{top * step / 4:.3g}</text>')
    parts.append(f'<text x="{LABEL_WIDTH + plot / 2}" y="{axis_y + 32}" text-anchor="middle" '
                 f'class="dms-chart-axis-title">{escape(unit)}</text>')
    parts.append(f'<text x="8" y="16" class="dms-chart-axis-title">{escape(title)}</text>')
    for index, name in enumerate(series):  # the legend, under the title
        parts.append(f'<rect x="{LABEL_WIDTH + 110 * index}" y="22" width="12" height="12" class="dms-bar '
                     f'dms-bar-{index}"/><text x="{LABEL_WIDTH + 110 * index + 16}" y="32" '
                     f'class="dms-chart-tick">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _changelist(model: str, **filters) -> str:
    return f"{reverse(f'admin:channels_app_{model}_changelist')}?{urlencode(filters)}"


def _period_filters(prefix: str, period: Period) -> dict:
    # As the rollups count: the conversations of the hours that begin inside the period (services/reports.py).
    start = period.start.replace(minute=0, second=0, microsecond=0)
    end = period.end.replace(minute=0, second=0, microsecond=0)
    if end < period.end:
        end += timedelta(hours=1)
    return {f"{prefix}created_at__gte": start.strftime("%Y-%m-%d %H:%M:%S+00:00"),
            f"{prefix}created_at__lt": end.strftime("%Y-%m-%d %H:%M:%S+00:00")}


def _group_filter(dimension: str, key) -> dict:
    if dimension == ReportDimension.QUEUE:
        return {"queue__exact": key}
    if dimension == ReportDimension.CHANNEL:
        return {"channel__id__exact": key}
    if dimension == ReportDimension.AGENT:
        return {"assigned_to__id__exact": key} if key else {"assigned_to__isnull": "True"}
    return {"disposition__exact": key}


def _conversation_links(row: dict, dimension: str, period: Period) -> dict:
    group = _group_filter(dimension, row["key"])
    interactions = _changelist("interaction", **group, **_period_filters("", period))
    through = {f"interaction__{name}": value for name, value in group.items()}
    messages = {**through, **_period_filters("interaction__", period)}
    return {
        "interactions": interactions,
        "messages_in": _changelist("message", direction__exact="inbound", **messages),
        "messages_out": _changelist("message", direction__exact="outbound", **messages),
        "times": _changelist("interaction", **group, state__exact="ended", **_period_filters("", period)),
        "ended_without_reply": _changelist("interaction", **group, reply="none", **_period_filters("", period)),
    }


def _delivery_links(row: dict, period: Period) -> dict:
    base = {"channel__id__exact": row["key"], "direction__exact": "outbound",
            **_period_filters("interaction__", period)}
    return {
        "messages": _changelist("message", **base),
        "delivered": _changelist("message", status__in="delivered,read", **base),
        "read": _changelist("message", status__exact="read", **base),
        "failed": {reason: _changelist("message", status__in="failed,removed", reasons__icontains=reason, **base)
                   if reason != "Removed" else _changelist("message", status__exact="removed", **base)
                   for reason in row["failed_by_reason"]},
        "latency": _changelist("delivery", channel__id__exact=row["key"], **_period_filters("", period)),
        "circuit": reverse("admin:channels_app_channel_change", args=[row["key"]]),
    }


def _campaigns(user, period: Period) -> list[dict]:
    """The campaigns of the caller's tenants that started in the period, with their counts, each linking to
    the recipients behind it (GET /api/campaigns/{id}/recipients/?outcome=)."""
    found = []
    for campaign in campaign_list(user=user).filter(started_at__gte=period.start, started_at__lt=period.end) \
            .order_by("-started_at")[:CAMPAIGNS_SHOWN]:
        counts = campaign_counts(campaign=campaign)
        recipients = reverse("campaign-recipients", args=[campaign.pk])
        found.append({
            "campaign": campaign,
            "url": reverse("admin:channels_app_campaign_change", args=[campaign.pk]),
            "figures": [(name, counts.get(name, 0), f"{recipients}?{urlencode({'outcome': name})}")
                        for name in ("total", "refused", "sent", "delivered", "failed")],
        })
    return found


class ReplyFilter(admin.SimpleListFilter):
    """The interaction list's "Reply" filter: those that ended without a reply (the conversation report's
    `ended_without_reply`: the customer wrote, and no message went to them after their first one)."""

    title = "reply"
    parameter_name = "reply"

    def lookups(self, request, model_admin):
        return [("none", "ended without a reply")]

    def queryset(self, request, queryset):
        if self.value() != "none":
            return queryset
        first_in = Message.objects.filter(interaction=OuterRef("pk"), direction=MessageDirection.INBOUND) \
            .order_by("created_at").values("created_at")[:1]
        replied = Message.objects.filter(interaction=OuterRef("pk"), direction=MessageDirection.OUTBOUND,
                                         created_at__gte=OuterRef("first_in"))
        return queryset.filter(state=InteractionState.ENDED).annotate(first_in=Subquery(first_in)) \
            .filter(first_in__isnull=False).exclude(Exists(replied))


def reports_view(request, *, site):
    rule = rights.rule("admin:channels_app_reports")
    if rule is None or not rule.allows(request.user):
        raise PermissionDenied
    group_by = request.GET.get("group_by") or ReportDimension.QUEUE
    errors = []
    try:
        period = period_parse(start=request.GET.get("from") or None, end=request.GET.get("to") or None)
    except InvalidParameter as error:
        errors.append(f"{error.field}: {error.message}")
        period = period_parse(start=None, end=None)
    if group_by not in CONVERSATION_GROUPS:
        errors.append(f"group_by: one of {', '.join(CONVERSATION_GROUPS)}.")
        group_by = ReportDimension.QUEUE
    conversations = conversations_report(user=request.user, group_by=group_by, period=period)
    deliveries = deliveries_report(user=request.user, group_by=ReportDimension.CHANNEL, period=period)
    for row in conversations["groups"]:
        row["links"] = _conversation_links(row, group_by, period)
    for row in deliveries["groups"]:
        row["links"] = _delivery_links(row, period)
        row["failed"] = [(reason, count, row["links"]["failed"][reason])
                         for reason, count in row["failed_by_reason"].items()]
        row["circuit_open"] = timedelta(seconds=row["circuit_open_seconds"])
    now = timezone.now()
    context = {
        **site.each_context(request),
        "title": "Reports",
        "errors": errors,
        "period": period,
        "group_by": group_by,
        "groups": CONVERSATION_GROUPS,
        "quick": [(label, urlencode({"from": (now - length).strftime("%Y-%m-%dT%H:%M"), "group_by": group_by}))
                  for label, length in QUICK_PERIODS],
        "conversations": conversations,
        "as_of": reports_folded_until(),
        "deliveries": deliveries,
        "campaigns": _campaigns(request.user, period),
        "conversation_chart": bar_chart(
            title=f"Interactions and messages by {group_by}", unit="count (interactions, messages)",
            series=["interactions", "messages in", "messages out"],
            rows=[(row["label"] or "(none)", [row["interactions"], row["messages_in"], row["messages_out"]])
                  for row in conversations["groups"]]),
        "response_chart": bar_chart(
            title=f"First response time by {group_by}", unit="seconds (p50, p90)", series=["p50", "p90"],
            rows=[(row["label"] or "(none)", [row["first_response_seconds"]["p50"],
                                              row["first_response_seconds"]["p90"]])
                  for row in conversations["groups"]]),
        "delivery_chart": bar_chart(
            title="Messages to customers by channel", unit="messages", series=["sent", "delivered", "read"],
            rows=[(row["label"], [row["messages"], row["delivered"], row["read"]]) for row in deliveries["groups"]]),
    }
    return TemplateResponse(request, "admin/channels_app/reports.html", context)


def _urls(site) -> list:
    return [path("reports/", site.admin_view(lambda request: reports_view(request, site=site)),
                 name="channels_app_reports")]


admin.site.extra_urls.append(_urls)
