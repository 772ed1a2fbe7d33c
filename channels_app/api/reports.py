"""The conversation and delivery reports (API.md, "Reports"): JSON, or CSV with `?format=csv`. Need
`channels_app.view_reports`; scoped to the caller's tenants. The figures come from services.reports."""

import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import renderers
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_app.api.schema import VALIDATION_ERROR
from channels_app.services.reports import (
    CONVERSATION_GROUPS,
    DELIVERY_GROUPS,
    conversations_report,
    deliveries_report,
    period_parse,
    report_csv,
)


class ReportCSVRenderer(renderers.BaseRenderer):
    """`?format=csv`: a report one group a row (services.reports.report_csv: every text cell through the
    formula guard); an error as its JSON body, which a CSV reader shows in one cell."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict) and "groups" in data:
            return report_csv(data).encode("utf-8")
        return json.dumps(data).encode("utf-8")


PERIOD_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATETIME, description="Start (ISO 8601); default: 7 days before `to`."),
    OpenApiParameter("to", OpenApiTypes.DATETIME, description="End (ISO 8601); default: now."),
    OpenApiParameter("format", str, enum=["json", "csv"], description="csv: one group a row."),
]


class _ReportView(APIView):
    renderer_classes = [renderers.JSONRenderer, ReportCSVRenderer]
    groups: tuple[str, ...] = ()
    report = staticmethod(conversations_report)  # (user, group_by, period) -> the report

    def get(self, request):
        period = period_parse(start=request.query_params.get("from"), end=request.query_params.get("to"))
        group_by = request.query_params.get("group_by") or self.groups[0]
        report = self.report(user=request.user, group_by=group_by, period=period)
        response = Response(report)
        if request.accepted_renderer.format == "csv":
            response["Content-Disposition"] = f'attachment; filename="{self.rights_name}-{group_by}.csv"'
        return response


class ConversationsReportView(_ReportView):
    """Per queue, channel, agent (the built-in routing's assignee) or disposition: the interactions begun in
    the period, their messages in and out, first response and handle times (p50, p90, seconds), and those
    that ended without a reply. At most a fold period (REPORTS_FOLD_SECONDS) behind the messages: `as_of`."""

    rights_name = "report-conversations"
    groups = CONVERSATION_GROUPS

    @extend_schema(tags=["Reports"], summary="Conversation report", parameters=[
        OpenApiParameter("group_by", str, enum=list(CONVERSATION_GROUPS), description="Default: queue."),
        *PERIOD_PARAMETERS], responses={200: OpenApiTypes.OBJECT, 400: VALIDATION_ERROR})
    def get(self, request):
        return super().get(request)


class DeliveriesReportView(_ReportView):
    """Per channel: messages to customers, delivered, read, failures by reason, webhook latency (p50, p99,
    milliseconds) and the seconds the channel's circuit was open in the period."""

    rights_name = "report-deliveries"
    groups = DELIVERY_GROUPS
    report = staticmethod(deliveries_report)

    @extend_schema(tags=["Reports"], summary="Delivery report", parameters=[
        OpenApiParameter("group_by", str, enum=list(DELIVERY_GROUPS), description="Default: channel."),
        *PERIOD_PARAMETERS], responses={200: OpenApiTypes.OBJECT, 400: VALIDATION_ERROR})
    def get(self, request):
        return super().get(request)
