"""REST API views: parse, call a service, shape the output."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Prefetch, Q
from django.http import HttpResponse
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from channels_app import selectors
from channels_app.api import serializers
from channels_app.api.agent_messages import agent_message_answer, require, require_header_attachment_right
from channels_app.api.parsers import JSONParser, MultiPartParser
from channels_app.api.query_params import IntegerFilter, StrictFilterSet, integer_in_range
from channels_app.api.renderers import RawJSON, WithRawJSONRenderer
from channels_app.api.schema import VALIDATION_ERROR, ErrorSerializer
from channels_app.authentication import ExpiringTokenAuthentication
from channels_app.errors import InvalidParameter, NotFound
from channels_app.models import (
    Attachment,
    AuditEntry,
    BusinessAttribute,
    Campaign,
    Channel,
    Contact,
    Interaction,
    StandardResponse,
    StandardResponseCategory,
    Tenant,
)
from channels_app.options_catalog import IW
from channels_app.selectors import (
    channel_get,
    interaction_get,
    interaction_history,
    restrict,
    tenant_ids_for,
    user_list,
)
from channels_app.services import campaign_reports
from channels_app.services import campaigns as campaign_services
from channels_app.services.agent_messages import session_start
from channels_app.services.business_attributes import business_attribute_delete, business_attribute_save
from channels_app.services.channels import (
    channel_delete,
    channel_rotate_secret,
    channel_rotate_verify_token,
    channel_save,
)
from channels_app.services.contacts import contact_directory_search, contact_update
from channels_app.services.interactions import interaction_close
from channels_app.services.lifecycle import tenant_retention_set
from channels_app.services.options import (
    option_definition_get,
    option_reset,
    option_set,
    option_value,
    options_list,
    session_option,
)
from channels_app.services.standard_responses import (
    attachment_create,
    attachment_delete,
    emojis_for,
    standard_response_category_delete,
    standard_response_category_save,
    standard_response_delete,
    standard_response_render,
    standard_response_save,
)
from channels_app.services.templates import template_submit, templates_sync_request
from channels_app.services.tenants import tenant_create, tenant_delete, tenant_update
from channels_app.services.tokens import token_obtain, token_revoke
from channels_app.services.transcripts import transcript_json, transcripts
from channels_app.services.users import user_create, user_delete, user_update


class ScopedQuerysetMixin:
    """Lists and details hold only what the caller's tenants hold: another
    tenant's object is a 404, as a missing one is."""

    def get_queryset(self):
        return restrict(super().get_queryset(), self.request.user)


def default_tenant(user, *, given=None, parent=None) -> Tenant:
    tenant = selectors.default_tenant(user, given=given, parent=parent)
    if tenant is None:
        raise InvalidParameter("You are a member of no tenant.", field="tenant")
    return tenant


class TokenView(APIView):
    """`POST`: exchange a username and password for an API token (a new one once the old has expired).
    `DELETE`: revoke the caller's token."""

    rights_name = "auth-token"
    authentication_classes = [ExpiringTokenAuthentication]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"

    def get_authenticators(self):
        # POST carries a password: a token sent along (perhaps the expired one being replaced) is not read,
        # and the throttle counts the client's address, never a user.
        if getattr(self.request, "method", None) == "POST":
            return []
        return super().get_authenticators()

    def get_authenticate_header(self, request):
        return "Token"  # a refusal is a 401 with `WWW-Authenticate: Token`

    @extend_schema(tags=["Tokens"], summary="Obtain an API token", request=serializers.TokenRequestSerializer,
                   responses={200: serializers.TokenSerializer, 401: ErrorSerializer, 429: ErrorSerializer})
    def post(self, request):
        serializer = serializers.TokenRequestSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        user = serializer.authenticated_user()
        if user is None and getattr(request, "axes_locked_out", False):
            # django-axes refused the attempt: too many failed logins from this address (the login throttle).
            cool_off = settings.AXES_COOLOFF_TIME
            raise Throttled(wait=cool_off.total_seconds() if cool_off else None,
                            detail="Too many failed logins from your address: try again later.")
        if user is None or not user.is_active:
            raise AuthenticationFailed("Wrong username or password.")
        return Response({"token": token_obtain(user=user).key})

    @extend_schema(tags=["Tokens"], summary="Revoke the caller's API token", request=None,
                   responses={204: None, 401: ErrorSerializer})
    def delete(self, request):
        token_revoke(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TenantViewSet(ScopedQuerysetMixin, viewsets.ModelViewSet):
    """Tenants the caller is a member of; whoever creates one becomes its member."""

    queryset = Tenant.objects.all()
    serializer_class = serializers.TenantSerializer

    @transaction.atomic
    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = tenant_create(tenant_id=data.get("id"), name=data["name"], created_by=self.request.user,
                                            timezone=data.get("timezone"))
        if data.get("retention_days"):
            tenant_retention_set(tenant=serializer.instance, retention_days=data["retention_days"])

    @transaction.atomic
    def perform_update(self, serializer):
        name = serializer.validated_data.get("name", serializer.instance.name)
        serializer.instance = tenant_update(tenant=serializer.instance, name=name,
                                            timezone=serializer.validated_data.get("timezone"))
        if "retention_days" in serializer.validated_data:
            tenant_retention_set(tenant=serializer.instance, retention_days=serializer.validated_data["retention_days"])

    def perform_destroy(self, tenant):
        tenant_delete(tenant=tenant)


class ChannelFilter(StrictFilterSet):
    class Meta:
        model = Channel
        fields = ["media_type", "transport", "tenant", "enabled"]


class ChannelViewSet(ScopedQuerysetMixin, viewsets.ModelViewSet):
    queryset = Channel.objects.select_related("tenant").prefetch_related("endpoints")
    serializer_class = serializers.ChannelSerializer
    lookup_field = "channel_id"
    lookup_value_regex = r"[^/]+"
    filterset_class = ChannelFilter

    def _save(self, serializer, channel):
        data = dict(serializer.validated_data)
        endpoints = data.pop("endpoints", None)
        inbound_route = data.pop("inbound_route_by_call", None)
        for key, value in data.items():
            setattr(channel, key, value)
        serializer.instance = channel_save(channel=channel, endpoints=endpoints, inbound_route_by_call=inbound_route)

    @extend_schema(responses={201: serializers.ChannelCreatedSerializer})
    def create(self, request, *args, **kwargs):
        """Create a channel. A secret left blank is generated and returned in this answer, once."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        generated = not serializer.validated_data.get("secret")
        generated_token = not serializer.validated_data.get("verify_token")
        self._save(serializer, Channel())
        body = dict(serializer.data)
        if generated:
            body["secret"] = serializer.instance.secret
        if generated_token and serializer.instance.verify_token:
            body["verify_token"] = serializer.instance.verify_token
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        self._save(serializer, serializer.instance)

    def perform_destroy(self, channel):
        channel_delete(channel=channel)

    @extend_schema(request=serializers.RotateSecretSerializer, responses={200: serializers.SecretSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, channel_id=None):
        """Replace the channel's secret with a generated one, shown in this answer only. With `grace_hours`
        (0 to 24, default 0) inbound requests signed with the old secret are still accepted for that long."""
        serializer = serializers.RotateSecretSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        channel = self.get_object()
        secret = channel_rotate_secret(channel=channel, grace_hours=serializer.validated_data["grace_hours"])
        return Response(serializers.SecretSerializer(
            {"secret": secret, "previous_secret_valid_until": channel.previous_secret_until}).data)

    @extend_schema(request=None, responses={200: serializers.VerifyTokenSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-verify-token")
    def rotate_verify_token(self, request, channel_id=None):
        """WhatsApp Cloud API: replace the channel's verify token with a generated one, shown in this answer
        only (enter it in Meta's webhook configuration)."""
        return Response({"verify_token": channel_rotate_verify_token(channel=self.get_object())})

    @extend_schema(request=None, responses={202: OpenApiResponse(description="The sync is queued.")})
    @action(detail=True, methods=["post"], url_path="sync-templates")
    def sync_templates(self, request, channel_id=None):
        """WhatsApp Cloud API: fetch the status of every template of the channel's WABA from Meta (a task)."""
        templates_sync_request(channel=self.get_object())
        return Response({"status": "queued"}, status=status.HTTP_202_ACCEPTED)


class OptionViewSet(viewsets.ViewSet):
    """Options of the catalog with their values; PATCH sets one (globally or for a channel)."""

    lookup_value_regex = r"[^/]+"
    rights_name = "option"

    @extend_schema(
        parameters=[
            OpenApiParameter("section", str, description="interaction-workspace, chat-server, dms or channel"),
            OpenApiParameter("channel", str, description="A channel id: effective values for that channel"),
        ],
        responses=serializers.OptionSerializer(many=True),
    )
    def list(self, request):
        channel = self._channel(request, request.query_params.get("channel"))
        options = options_list(section=request.query_params.get("section") or None, channel=channel)
        return Response(serializers.OptionSerializer(options, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("section", str, OpenApiParameter.PATH),
            OpenApiParameter("name", str, OpenApiParameter.PATH),
            OpenApiParameter("channel", str, description="A channel id"),
        ],
        responses=serializers.OptionSerializer,
    )
    def retrieve(self, request, section=None, name=None):
        return Response(self._one(section, name, self._channel(request, request.query_params.get("channel"))))

    @extend_schema(
        parameters=[
            OpenApiParameter("section", str, OpenApiParameter.PATH),
            OpenApiParameter("name", str, OpenApiParameter.PATH),
        ],
        request=serializers.OptionUpdateSerializer,
        responses=serializers.OptionSerializer,
    )
    def partial_update(self, request, section=None, name=None):
        option_definition_get(section=section, name=name)
        serializer = serializers.OptionUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        channel = self._channel(request, serializer.validated_data.get("channel"))
        option_set(section=section, name=name, value=serializer.validated_data["value"], channel=channel)
        return Response(self._one(section, name, channel))

    @extend_schema(
        parameters=[
            OpenApiParameter("section", str, OpenApiParameter.PATH),
            OpenApiParameter("name", str, OpenApiParameter.PATH),
            OpenApiParameter("channel", str, description="A channel id: remove its override"),
        ],
        responses={204: None},
    )
    def destroy(self, request, section=None, name=None):
        """Reset an option: remove a channel's override, or set the global value back to the default."""
        option_reset(section=section, name=name, channel=self._channel(request, request.query_params.get("channel")))
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _one(self, section, name, channel):
        definition = option_definition_get(section=section, name=name)
        option = next(o for o in options_list(section=section, channel=channel) if o.definition is definition)
        return serializers.OptionSerializer(option).data

    @staticmethod
    def _channel(request, channel_id):
        if not channel_id:
            return None
        try:
            return channel_get(user=request.user, channel_id=channel_id)
        except NotFound as error:
            raise InvalidParameter(f"Unknown channel {channel_id!r}.", field="channel") from error


class BusinessAttributeViewSet(viewsets.ModelViewSet):
    queryset = BusinessAttribute.objects.prefetch_related("values")
    serializer_class = serializers.BusinessAttributeSerializer
    filterset_fields = ["type", "name"]

    def _save(self, serializer, attribute):
        data = dict(serializer.validated_data)
        values = data.pop("values", None)
        for key, value in data.items():
            setattr(attribute, key, value)
        serializer.instance = business_attribute_save(attribute=attribute, values=values)

    def perform_create(self, serializer):
        self._save(serializer, BusinessAttribute())

    def perform_update(self, serializer):
        self._save(serializer, serializer.instance)

    def perform_destroy(self, attribute):
        business_attribute_delete(attribute=attribute)


class StandardResponseCategoryViewSet(ScopedQuerysetMixin, viewsets.ModelViewSet):
    queryset = StandardResponseCategory.objects.select_related("parent")
    serializer_class = serializers.StandardResponseCategorySerializer
    filterset_fields = ["parent"]

    def _save(self, serializer, category):
        data = dict(serializer.validated_data)
        if category.pk is None:
            category.tenant = default_tenant(
                self.request.user, given=data.pop("tenant", None), parent=data.get("parent")
            )
        data.pop("tenant", None)
        for key, value in data.items():
            setattr(category, key, value)
        serializer.instance = standard_response_category_save(category=category)

    def perform_create(self, serializer):
        self._save(serializer, StandardResponseCategory())

    def perform_update(self, serializer):
        self._save(serializer, serializer.instance)

    def perform_destroy(self, category):
        standard_response_category_delete(category=category)


class AttachmentViewSet(ScopedQuerysetMixin, viewsets.ModelViewSet):
    """Attachments of standard responses: upload (multipart `file`), list, delete."""

    queryset = Attachment.objects.all()
    serializer_class = serializers.AttachmentSerializer
    parser_classes = [MultiPartParser]
    http_method_names = ["get", "post", "delete", "head", "options"]
    filterset_fields = ["kind"]

    def perform_create(self, serializer):
        data = serializer.validated_data
        tenant = default_tenant(self.request.user, given=data.get("tenant"))
        serializer.instance = attachment_create(tenant=tenant, uploaded_file=data["file"], name=data.get("name"))

    def perform_destroy(self, attachment):
        attachment_delete(attachment=attachment)


class StandardResponseFilter(StrictFilterSet):
    category = IntegerFilter(method="filter_category", help_text="A category id; its subcategories included.")
    search = filters.CharFilter(method="filter_search", help_text="Words in the name or the text.")

    class Meta:
        model = StandardResponse
        fields = ["category", "content_type", "language", "search"]

    def filter_category(self, queryset, name, value):
        ids, frontier = {int(value)}, {int(value)}
        while frontier:
            frontier = set(
                restrict(StandardResponseCategory.objects.filter(parent__in=frontier), self.request.user)
                .values_list("pk", flat=True)
            ) - ids
            ids |= frontier
        return queryset.filter(category__in=ids)

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(body__icontains=value))


class StandardResponseViewSet(ScopedQuerysetMixin, viewsets.ModelViewSet):
    queryset = StandardResponse.objects.select_related("category").prefetch_related(
        "attachments", "whatsapp_templates__channel")
    serializer_class = serializers.StandardResponseSerializer
    filterset_class = StandardResponseFilter
    lookup_value_regex = r"[A-Za-z0-9]+"

    def _save(self, serializer, response):
        data = dict(serializer.validated_data)
        attachments = data.pop("attachments", None)
        if response.tenant_id is None:
            response.tenant = default_tenant(
                self.request.user, given=data.pop("tenant", None), parent=data.get("category")
            )
        data.pop("tenant", None)  # a response stays in its tenant
        for key, value in data.items():
            setattr(response, key, value)
        serializer.instance = standard_response_save(response=response, attachments=attachments)

    def perform_create(self, serializer):
        self._save(serializer, StandardResponse())

    def perform_update(self, serializer):
        self._save(serializer, serializer.instance)

    def perform_destroy(self, response):
        standard_response_delete(response=response)

    @extend_schema(request=serializers.RenderRequestSerializer, responses=serializers.RenderResponseSerializer)
    @action(detail=True, methods=["post"])
    def render(self, request, pk=None):
        """Render with field values: the webhook payload and the field codes left without a value."""
        serializer = serializers.RenderRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rendered = standard_response_render(
            response=self.get_object(), fields=serializer.validated_data.get("fields")
        )
        return Response({"payload": rendered.payload, "missing": list(rendered.missing)})

    @extend_schema(request=serializers.TemplateSubmitSerializer,
                   responses={202: serializers.WhatsAppTemplateSerializer,
                              429: OpenApiResponse(ErrorSerializer, "Too many templates submitted in the last hour.")})
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        """Submit a notification or rich media response as a WhatsApp template on a whatsapp_cloud channel;
        its `template_status` follows Meta's webhooks and the channel's sync-templates."""
        response = self.get_object()
        serializer = serializers.TemplateSubmitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        channel = restrict(Channel.objects.filter(channel_id=serializer.validated_data["channel"]),
                           request.user).first()
        if channel is None:
            raise InvalidParameter(f"Unknown channel {serializer.validated_data['channel']!r}.", field="channel")
        row = template_submit(response=response, channel=channel, category=serializer.validated_data["category"])
        return Response(serializers.WhatsAppTemplateSerializer(row).data, status=status.HTTP_202_ACCEPTED)


class EmojiView(APIView):
    """The emojis agents may insert (option whatsappsession.emojis-business-attribute, else the default set)."""

    rights_name = "emojis"

    @extend_schema(
        parameters=[OpenApiParameter("channel", str, description="A channel id: its option override applies")],
        responses=serializers.EmojiSerializer(many=True),
    )
    def get(self, request):
        channel = OptionViewSet._channel(request, request.query_params.get("channel"))
        return Response(emojis_for(channel=channel))


class InteractionFilter(StrictFilterSet):
    channel = filters.CharFilter(field_name="channel__channel_id", help_text="A channel id.")
    client = filters.CharFilter(field_name="client_id", help_text="The customer's client id.")
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Interaction
        fields = ["channel", "client", "state", "type", "queue", "contact", "created_after", "created_before"]


class InteractionViewSet(ScopedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    """Interactions (chat sessions), newest first, with their transcript; agents post messages to them."""

    queryset = Interaction.objects.select_related("channel").order_by("-created_at")
    filterset_class = InteractionFilter
    renderer_classes = [WithRawJSONRenderer, BrowsableAPIRenderer]
    lookup_value_regex = r"[A-Za-z0-9]+"

    def get_serializer_class(self):
        return serializers.InteractionSerializer if self.action == "retrieve" else serializers.InteractionListSerializer

    def list(self, request, *args, **kwargs):
        # The contact panel lists the contact's interactions at every opening (issue 24, "Speed"): the rows
        # written by one serializer built once per process (serializers.represent), as retrieve's.
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(
            [serializers.represent(serializers.InteractionListSerializer, interaction) for interaction in page])

    def retrieve(self, request, *args, **kwargs):
        # Opening a conversation is the workspace's hot path (issue 24, "Speed"): the serializer's fields built
        # once per process (serializers.represent), not at every request, and the transcript as PostgreSQL wrote
        # it, into the response as it is (InteractionSerializer's JSON all the same).
        interaction = self.get_object()
        body = serializers.represent(serializers.InteractionFieldsSerializer, interaction)
        body["messages"] = RawJSON(transcript_json(interaction=interaction))
        return Response(body)

    @extend_schema(
        summary="Send an agent message",
        request=serializers.AgentMessageSerializer,
        responses={202: serializers.AgentMessageResultSerializer, 409: OpenApiResponse(
            ErrorSerializer, "The session has ended, or the WhatsApp 24-hour window has closed (reply buttons "
            "and lists always; text when automatic notifications are off).")},
        examples=[
            OpenApiExample("Text", request_only=True, value={"text": "How can I help?"}),
            OpenApiExample("A standard response", request_only=True, value={
                "standard_response_id": "000G9aF2PQ3A000K",
                "fields": {"Contact": {"MyFC_BillAmount": "$129.99"}}}),
            OpenApiExample("Sent inside the default notification", response_only=True, status_codes=["202"], value={
                "id": "4Xw0pZ9cD2eF6gH8iJ1k", "direction": "outbound",
                "text": "Thank you for your patience! Still there?", "status": "queued", "reasons": [],
                "payload": {"type": "Notification", "text": "Thank you for your patience! Still there?",
                            "template": {"name": "patience_1", "id": "patience_1", "language": "en",
                                         "parameters": ["Still there?"]}},
                "external_id": "", "trace_id": "", "origin_time": None, "created_at": "2024-03-07T10:00:00Z",
                "sent_at": None, "delivered_at": None, "sent_as": "notification"}),
        ],
    )
    @action(detail=True, methods=["post"])
    def messages(self, request, pk=None):
        """Send an agent message (text, a standard response with field values, or a location; with
        `attachments` sent after it); 202 once queued. On a WhatsApp channel it needs WhatsApp - Can Use, and
        with attachments WhatsApp - Can Send Files. On an e-mail channel the text leaves as an e-mail. A
        standard response renders as InviteToChat renders it (the contact's own fields fill `Contact` codes;
        a code without a value is 400 naming `fields`). `sent_as` says how it goes: `notification` when the
        text was put inside the default notification template (outside the WhatsApp 24-hour window, with
        automatic notifications on)."""
        return Response(agent_message_answer(
            user=request.user, interaction_id=pk, content=lambda: request.data,
            trace_id=request.headers.get("X-B3-TraceId", ""),
        ), status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="End an interaction (Done), with a disposition code",
        request=serializers.EndRequestSerializer,
        responses={200: serializers.InteractionSerializer,
                   409: OpenApiResponse(ErrorSerializer, "The interaction has already ended.")},
        examples=[OpenApiExample("With a disposition", request_only=True, value={"disposition": "Resolved"})],
    )
    @action(detail=True, methods=["post"])
    def end(self, request, pk=None):
        """The agent's Done: the session ends (`state` `ended`) with an optional `disposition`, a value
        (its name) of the Disposition Code business attribute (400 naming `disposition` otherwise).
        Ending an ended interaction is 409. Needs view_interaction and change_interaction."""
        interaction = interaction_get(user=request.user, interaction_id=pk)
        serializer = serializers.EndRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        interaction_close(interaction_id=interaction.pk, disposition=serializer.validated_data.get("disposition", ""),
                          ended_by=request.user.get_username())
        return Response(serializers.InteractionSerializer(self._detail(interaction.pk)).data)

    @extend_schema(
        summary="Older messages: the contact's earlier interactions",
        request=None,
        responses={200: serializers.HistorySerializer},
        examples=[OpenApiExample("One earlier interaction", response_only=True, value={
            "interaction": "0001AaBbCcDdEeFf", "transcript_interactions_count": 1,
            "show_cross_channel_messages": False,
            "interactions": [{
                "id": "0000ZzYyXxWwVvUu", "type": "Inbound", "subtype": "InboundNew", "state": "ended",
                "channel": "channel-whatsapp-REAL", "client_id": "15556667777", "queue": "1:session-chat",
                "contact": 1, "created_at": "2024-03-06T09:00:00Z", "last_activity_at": "2024-03-06T09:05:00Z",
                "ended_at": "2024-03-06T09:10:00Z", "end_reason": "ended by agent", "disposition": "Resolved",
                "messages": [{"id": "7Jk2", "direction": "inbound", "text": "My bill is wrong", "status": "received",
                              "reasons": [], "payload": {"type": "Text", "text": "My bill is wrong"},
                              "external_id": "", "trace_id": "", "origin_time": None,
                              "created_at": "2024-03-06T09:00:00Z", "sent_at": None, "delivered_at": None}],
            }],
        })],
    )
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        """"See older messages..." (WhatsApp guide): the earlier interactions of the same contact, newest
        first, each with its messages: those of the same channel, or of every channel of the tenant when
        `whatsappsession.show-cross-channel-messages` is true; at most
        `whatsappsession.transcript-interactions-count` (both as they were when this interaction was created:
        they take effect at the next interaction)."""
        interaction = interaction_get(user=request.user, interaction_id=pk)
        earlier = interaction_history(user=request.user, interaction=interaction)
        body = {
            "interaction": interaction.pk,
            "transcript_interactions_count": session_option(
                interaction=interaction, section=IW, name="whatsappsession.transcript-interactions-count"),
            "show_cross_channel_messages": session_option(
                interaction=interaction, section=IW, name="whatsappsession.show-cross-channel-messages"),
            "interactions": serializers.HistoryInteractionSerializer(
                earlier, many=True, context={"transcripts": transcripts(interactions=earlier)}).data,
        }
        return Response(body)

    @extend_schema(
        summary="Start a new outbound session with the interaction's contact",
        request=serializers.NewSessionRequestSerializer,
        responses={
            201: serializers.NewSessionResultSerializer,
            403: OpenApiResponse(ErrorSerializer, "A WhatsApp channel needs WhatsApp - Can Use; another media than "
                                 "the interaction's needs WhatsApp - Can Create new session from other media."),
            409: OpenApiResponse(ErrorSerializer, "WhatsApp outside the customer's 24-hour window: only a "
                                 "notification template can open the session."),
        },
        examples=[
            OpenApiExample("A notification template", request_only=True, value={
                "channel": "channel-whatsapp-REAL", "standard_response_id": "000G9aF2PQ3A000K",
                "fields": {"Contact": {"MyFC_BillAmount": "$129.99"}}}),
            OpenApiExample("Text (inside the window)", request_only=True, value={
                "channel": "channel-whatsapp-REAL", "text": "Hello again, about your bill..."}),
        ],
    )
    @action(detail=True, methods=["post"])
    def sessions(self, request, pk=None):
        """A new outbound session (Outbound/OutboundNew) to the interaction's contact on `channel` (of the
        caller's tenants), with its first message (text, or a standard response with field values): the
        interaction may have ended. `channel` is the interaction's own channel, or one listed by the outbound
        session config: the interaction's attached `_umsOutboundSessionConfig`, else the option
        `whatsappsession.outbound-session-config` (400 naming `channel` otherwise). The new session is placed
        in the interaction's queue (same channel) or the channel's `inbound-route-by-call`, and carries
        `OriginalInteractionId` and the `_umsOutboundSessionConfig` it came with. On WhatsApp outside the
        customer's 24-hour window only a notification can open it (409 otherwise; text goes inside the default
        notification template when automatic notifications are on: `sent_as` `notification`)."""
        interaction = interaction_get(user=request.user, interaction_id=pk)
        serializer = serializers.NewSessionRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            channel = channel_get(user=request.user, channel_id=data["channel"])
        except NotFound as error:
            raise InvalidParameter(f"Unknown channel {data['channel']!r}.", field="channel") from error
        if channel.media_type == "whatsapp":
            require(request.user, "agent.whatsapp")
        if channel.media_type != interaction.channel.media_type:
            require(request.user, "agent.new_session_from_other_media")
        require_header_attachment_right(request.user, channel, data)
        started = session_start(
            interaction_id=interaction.pk, channel=channel, text=data.get("text"),
            standard_response_id=data.get("standard_response_id"), fields=data.get("fields"),
            header_attachment=data.get("header_attachment"),
            trace_id=request.headers.get("X-B3-TraceId", ""), agent=request.user,
        )
        created = self._detail(started.interaction.pk)
        created.sent_as = started.sent_as
        return Response(serializers.NewSessionResultSerializer(created).data, status=status.HTTP_201_CREATED)

    @staticmethod
    def _detail(interaction_id: str) -> Interaction:
        return Interaction.objects.select_related("channel").get(pk=interaction_id)


class ContactFilter(StrictFilterSet):
    phone = filters.CharFilter(field_name="phone_number")
    search = filters.CharFilter(method="filter_search", help_text="Name, nickname, phone, e-mail or client id.")
    directory = filters.CharFilter(
        method="filter_directory", help_text="The contact directory's search (the workspace): every word in one of "
        "the attributes named by the option contact.directory-search-attributes.")

    class Meta:
        model = Contact
        fields = ["phone", "client_id", "search", "directory"]

    def filter_search(self, queryset, name, value):
        return queryset.filter(
            Q(first_name__icontains=value) | Q(last_name__icontains=value) | Q(nickname__icontains=value)
            | Q(phone_number__icontains=value) | Q(email__icontains=value) | Q(client_id__icontains=value)
        )

    def filter_directory(self, queryset, name, value):
        attribute_names = option_value(section=IW, name="contact.directory-search-attributes").split(",")
        return contact_directory_search(queryset, words=value, attribute_names=attribute_names)


class ContactViewSet(ScopedQuerysetMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Contacts with the ids of their interactions (their history) and the channels they opted out of;
    PATCH `{"opted_out": [<channel id>, ...]}` changes those, and `first_name`, `last_name`, `email`,
    `nickname` and `attributes` (an object of texts, replaced whole) the contact's details (the workspace's
    contact panel)."""

    # Their interactions' ids only (`interactions`), not every column of each: the workspace reads a contact whenever
    # an agent opens a conversation (issue 24, "Speed").
    queryset = Contact.objects.prefetch_related(
        Prefetch("interactions", queryset=Interaction.objects.only("pk", "contact_id").order_by("-created_at")),
        "opt_outs__channel")
    serializer_class = serializers.ContactSerializer
    filterset_class = ContactFilter
    http_method_names = ["get", "patch", "head", "options"]

    def retrieve(self, request, *args, **kwargs):
        # Read at every opening of a conversation (issue 24, "Speed"): the serializer's fields built once per
        # process (serializers.represent), not at every request.
        return Response(serializers.represent(serializers.ContactSerializer, self.get_object()))

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        if "opted_out" in data:
            require(self.request.user, "agent.change_opt_outs")
        contact = contact_update(contact=serializer.instance, changes=data, opted_out=data.get("opted_out"))
        serializer.instance = self.get_queryset().get(pk=contact.pk)


TRANSITION_SCHEMA = extend_schema(request=None, responses={
    200: serializers.CampaignSerializer,
    400: OpenApiResponse(VALIDATION_ERROR, "Start: the standard response has field codes no recipient can fill."),
    409: OpenApiResponse(ErrorSerializer, "The campaign's state does not allow it (or it has no recipients)."),
})


class CampaignViewSet(ScopedQuerysetMixin, viewsets.ModelViewSet):
    """Notification campaigns: create with recipients (JSON or a CSV `file`), then start, pause, resume, cancel."""

    queryset = Campaign.objects.select_related("channel", "standard_response")
    serializer_class = serializers.CampaignSerializer
    parser_classes = [JSONParser, MultiPartParser]
    http_method_names = ["get", "post", "delete", "head", "options"]
    filterset_fields = ["state", "channel"]

    @extend_schema(request={"application/json": serializers.CampaignSerializer,
                            "multipart/form-data": serializers.CampaignUploadSerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        rows = data.get("recipients") or []
        upload = request.FILES.get("file")
        audience = campaign_services.audience_csv_open(binary=upload) if upload is not None else None
        campaign, report = campaign_services.campaign_create(
            name=data["name"], channel=data["channel"], standard_response=data.get("standard_response"),
            rows=rows, audience=audience,
            rate_per_second=data.get("rate_per_second"), start_at=data.get("start_at"),
            terminate_sessions=data.get("terminate_sessions", True), chat_queue_key=data.get("chat_queue_key", ""),
            created_by=request.user, variants=data.get("variants"), segment=data.get("segment"),
            send_window=data.get("send_window"),
        )
        body = {**serializers.CampaignSerializer(campaign).data, "audience_report": report.as_dict()}
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, campaign):
        campaign_services.campaign_delete(campaign=campaign)

    @extend_schema(
        parameters=[
            OpenApiParameter("page", int, description="A page number within the paginated result set."),
            OpenApiParameter("outcome", str, enum=list(campaign_reports.OUTCOMES),
                             description="The recipients behind a figure of the campaign report."),
            OpenApiParameter("reason", str, description="A key of the report's failed_by_reason."),
            OpenApiParameter("variant", str, description="A variant's position (0 to 4) or letter (A to E)."),
            OpenApiParameter("from", OpenApiTypes.DATETIME, description="Reached from (as the report's period)."),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="Reached before (as the report's period)."),
        ],
        responses=serializers.PaginatedRecipientListSerializer,
    )
    @action(detail=True, methods=["get"], url_path="recipients")
    def recipients(self, request, pk=None):
        """The campaign's recipients with their status; with `outcome`, `reason`, `variant` (and `from`/`to`),
        those behind a figure of the campaign report (`GET /api/reports/campaigns/{id}/`)."""
        campaign = self.get_object()
        params = request.query_params
        period = None
        if params.get("from") or params.get("to"):
            period = campaign_reports.period_parse(start=params.get("from"), end=params.get("to"))
        recipients = campaign_reports.campaign_recipients_behind(
            campaign=campaign, outcome=params.get("outcome"), reason=params.get("reason"),
            variant=params.get("variant"), period=period)
        page = self.paginate_queryset(recipients.select_related("message").order_by("row_number"))
        return self.get_paginated_response(serializers.RecipientSerializer(page, many=True).data)

    @extend_schema(
        request={"application/json": serializers.RecipientsRequestSerializer,
                 "multipart/form-data": serializers.RecipientsUploadSerializer},
        responses={200: serializers.AudienceReportSerializer,
                   202: OpenApiResponse(serializers.AudienceReportSerializer,
                                        "A large CSV: read in the background; the campaign's audience_upload "
                                        "shows how far.")},
    )
    @recipients.mapping.post
    def add_recipients(self, request, pk=None):
        """Add recipients (JSON `recipients` list or CSV `file`) to a draft."""
        campaign = self.get_object()
        upload = request.FILES.get("file")
        rows, audience = None, None
        if upload is not None:
            audience = campaign_services.audience_csv_open(binary=upload)
        else:
            serializer = serializers.RecipientsRequestSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            rows = serializer.validated_data["recipients"]
        report = campaign_services.campaign_add_recipients(campaign=campaign, rows=rows, audience=audience)
        loading = report.state == campaign_services.LOADING  # a large CSV: read by a worker, see audience_upload
        return Response(report.as_dict(), status=status.HTTP_202_ACCEPTED if loading else status.HTTP_200_OK)

    @extend_schema(request=None, responses={(200, "text/csv"): OpenApiTypes.STR})
    @action(detail=True, methods=["get"], url_path="results")
    def results_csv(self, request, pk=None):
        """Every recipient's result as CSV."""
        campaign = self.get_object()
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}-results.csv"'
        campaign_services.campaign_results_csv(campaign=campaign, out=response)
        return response

    def _transition(self, pk, action_name):
        campaign = campaign_services.campaign_transition(campaign_id=self.get_object().pk, action=action_name)
        return Response(serializers.CampaignSerializer(campaign).data)

    @TRANSITION_SCHEMA
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        return self._transition(pk, "start")

    @TRANSITION_SCHEMA
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._transition(pk, "pause")

    @TRANSITION_SCHEMA
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._transition(pk, "resume")

    @TRANSITION_SCHEMA
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._transition(pk, "cancel")


class UserFilter(StrictFilterSet):
    group = filters.CharFilter(field_name="groups__name", help_text="A group name.")
    tenant = IntegerFilter(method="filter_tenant", help_text="A tenant id (of the caller's tenants).")

    class Meta:
        model = get_user_model()
        fields = ["username", "group", "tenant", "is_active"]

    def filter_tenant(self, queryset, name, value):
        # Members of a tenant the caller does not see are not listed: as for a tenant that does not exist.
        visible = tenant_ids_for(self.request.user)
        if visible is not None and value not in visible:
            return queryset.none()
        return queryset.filter(memberships__tenant=value).distinct()


class UserViewSet(viewsets.ModelViewSet):
    """Users with their groups (roles) and tenants. A user who is not a superuser sees the users of its
    tenants, and may grant only its own tenants and the groups it is in."""

    serializer_class = serializers.UserSerializer
    filterset_class = UserFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return user_list(user=self.request.user).prefetch_related("groups", "memberships").order_by("pk")

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "visible_tenant_ids": tenant_ids_for(self.request.user)}

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = user_create(
            username=data["username"], password=data["password"], groups=data.get("groups", []),
            tenants=data.get("tenants", []), email=data.get("email", ""), is_staff=data.get("is_staff", True),
            granted_by=self.request.user,
        )

    def perform_update(self, serializer):
        data = serializer.validated_data
        serializer.instance = user_update(
            user=serializer.instance, granted_by=self.request.user, password=data.get("password"),
            groups=data.get("groups"), tenants=data.get("tenants"), email=data.get("email"),
            is_staff=data.get("is_staff"), is_active=data.get("is_active"),
        )

    def perform_destroy(self, user):
        user_delete(user=user, deleted_by=self.request.user)


class AuditLogFilter(StrictFilterSet):
    object_type = filters.CharFilter(help_text="e.g. channel, option, standard-response, campaign, token.")
    object_id = filters.CharFilter(help_text="The object's id as the API names it (a channel's channel_id).")
    user = filters.CharFilter(method="filter_user", help_text="A user id or a username.")

    class Meta:
        model = AuditEntry
        fields = ["object_type", "object_id", "user"]

    def filter_user(self, queryset, name, value):
        if value.isdigit() and integer_in_range(value):  # digits past 64 bits can only be a username
            return queryset.filter(Q(user_id=int(value)) | Q(username=value))
        return queryset.filter(username=value)


@extend_schema_view(
    list=extend_schema(tags=["Audit log"], summary="The audit log: changes of configuration, newest first",
                       responses={200: serializers.AuditEntrySerializer(many=True),
                                  403: OpenApiResponse(ErrorSerializer, "Needs channels_app.view_auditentry.")}),
    retrieve=extend_schema(tags=["Audit log"], summary="One audit entry",
                           responses={200: serializers.AuditEntrySerializer,
                                      403: OpenApiResponse(ErrorSerializer, "Needs channels_app.view_auditentry.")}),
)
class AuditLogViewSet(viewsets.ReadOnlyModelViewSet):
    """Who changed what, when, from where, before → after (secrets masked): the entries of the caller's
    tenants (installation-wide ones, with no tenant, to superusers only)."""

    serializer_class = serializers.AuditEntrySerializer
    filterset_class = AuditLogFilter

    def get_queryset(self):
        return restrict(AuditEntry.objects.all(), self.request.user)
