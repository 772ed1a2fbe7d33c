from django.urls import path
from rest_framework.routers import DefaultRouter

from channels_app.api import (
    agent_messages,
    campaign_reports,
    events,
    lifecycle,
    reports,
    routing,
    segments,
    views,
    workspace,
)
from channels_app.lean import lean_post


class ApiRootView(DefaultRouter.APIRootView):
    """The links to every resource of the API."""

    rights_name = "api-root"


router = DefaultRouter(trailing_slash=True)
router.APIRootView = ApiRootView
router.register("tenants", views.TenantViewSet, basename="tenant")
router.register("channels", views.ChannelViewSet, basename="channel")
router.register("business-attributes", views.BusinessAttributeViewSet, basename="business-attribute")
router.register("standard-responses", views.StandardResponseViewSet, basename="standard-response")
router.register(
    "standard-response-categories", views.StandardResponseCategoryViewSet, basename="standard-response-category"
)
router.register("attachments", views.AttachmentViewSet, basename="attachment")
router.register("interactions", views.InteractionViewSet, basename="interaction")
router.register("contacts", views.ContactViewSet, basename="contact")
router.register("campaigns", views.CampaignViewSet, basename="campaign")
router.register("users", views.UserViewSet, basename="user")
router.register("audit-log", views.AuditLogViewSet, basename="audit-log")
router.register("queues", routing.QueueViewSet, basename="queue")
router.register("offers", routing.OfferViewSet, basename="offer")
router.register("segments", segments.SegmentViewSet, basename="segment")

# An agent's message with a token: past the middleware and DRF (channels_app/api/agent_messages.py). Its routes
# come first in the list below, so that resolving it does not try the API's other patterns first (issue 25).
# That order answers every URL as before: none of the patterns they move ahead of matches a URL beginning
# `interactions/<id>/messages` (tests/test_url_order.py).
AGENT_MESSAGE_ROUTES = [route for route in router.urls if route.name == "interaction-messages"]
for route in AGENT_MESSAGE_ROUTES:
    lean_post(route.callback, agent_messages.lean_agent_message_post, agent_messages.lean_agent_message_takes)

option_list = views.OptionViewSet.as_view({"get": "list"})
option_detail = views.OptionViewSet.as_view(
    {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
)

urlpatterns = [
    *AGENT_MESSAGE_ROUTES,
    path("auth/token/", views.TokenView.as_view(), name="auth-token"),
    path("options/", option_list, name="option-list"),
    path("options/<str:section>/<str:name>/", option_detail, name="option-detail"),
    path("emojis/", views.EmojiView.as_view(), name="emojis"),
    path("agents/me/", routing.AgentMeView.as_view(), name="agent-me"),
    path("agents/me/events/", events.agent_events, name="agent-events"),
    path("agents/me/offers/", routing.AgentOffersView.as_view(), name="agent-offers"),
    path("agents/me/interactions/", workspace.AgentConversationsView.as_view(), name="agent-interactions"),
    path("agents/", workspace.AgentListView.as_view(), name="agents"),
    path("interactions/<str:pk>/session-channels/", workspace.InteractionSessionChannelsView.as_view(),
         name="interaction-session-channels"),
    path("interactions/<str:pk>/transfer/", routing.InteractionTransferView.as_view(), name="interaction-transfer"),
    path("interactions/<str:pk>/conference/", routing.InteractionConferenceView.as_view(),
         name="interaction-conference"),
    path("interactions/<str:pk>/notes/", routing.InteractionNotesView.as_view(), name="interaction-notes"),
    path("contacts/<int:pk>/erase/", lifecycle.ContactEraseView.as_view(), name="contact-erase"),
    path("contacts/<int:pk>/export/", lifecycle.ContactExportView.as_view(), name="contact-export"),
    path("reports/campaigns/<int:pk>/", campaign_reports.CampaignReportView.as_view(), name="report-campaign"),
    path("reports/conversations/", reports.ConversationsReportView.as_view(), name="report-conversations"),
    path("reports/deliveries/", reports.DeliveriesReportView.as_view(), name="report-deliveries"),
    *(route for route in router.urls if route.name != "interaction-messages"),
]
