"""The campaign report (API.md "Reports"): `GET /api/reports/campaigns/{id}/`, JSON or CSV with `?format=csv`.
Needs `channels_app.view_reports`; another tenant's campaign is a 404. The figures come from
services.campaign_reports; the recipients behind each are `GET /api/campaigns/{id}/recipients/?outcome=...`."""

import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import renderers
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_app.api.schema import ErrorSerializer
from channels_app.errors import NotFound
from channels_app.models import Campaign
from channels_app.selectors import restrict
from channels_app.services.campaign_reports import campaign_report, campaign_report_csv, period_parse


class CampaignReportCSVRenderer(renderers.BaseRenderer):
    """`?format=csv`: the campaign one row, each variant a row (every text cell through the formula guard);
    an error as its JSON body."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict) and "variants" in data and "failed_by_reason" in data:
            return campaign_report_csv(data).encode("utf-8")
        return json.dumps(data).encode("utf-8")


class CampaignReportView(APIView):
    """The outcomes of the recipients a campaign reached in the period (by the hour it reached them): total,
    refused, sent (accepted by the channel: sent, delivered or read), delivered (delivered or read), read,
    replied (wrote back on the channel within 72 hours of the message), opted_out (opted out of the channel
    within 72 hours), failed and failed_by_reason, and the same for each variant. At most a fold
    (15 s) behind the messages: `as_of`."""

    rights_name = "report-campaign"
    renderer_classes = [renderers.JSONRenderer, renderers.BrowsableAPIRenderer, CampaignReportCSVRenderer]

    @extend_schema(tags=["reports"], summary="Campaign report", parameters=[
        OpenApiParameter("from", OpenApiTypes.DATETIME, description="Start (ISO 8601); default: 7 days before `to`."),
        OpenApiParameter("to", OpenApiTypes.DATETIME, description="End (ISO 8601); default: now."),
        OpenApiParameter("format", str, enum=["json", "csv"], description="csv: the campaign and each variant a row."),
    ], responses={200: OpenApiTypes.OBJECT, 400: ErrorSerializer, 404: ErrorSerializer})
    def get(self, request, pk: int):
        campaign = restrict(Campaign.objects.all(), request.user).filter(pk=pk).first()
        if campaign is None:
            raise NotFound("No such campaign.")
        period = period_parse(start=request.query_params.get("from"), end=request.query_params.get("to"))
        response = Response(campaign_report(campaign=campaign, period=period))
        if request.accepted_renderer.format == "csv":
            response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}-report.csv"'
        return response
