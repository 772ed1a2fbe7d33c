"""The segments endpoints (API.md, "Audiences, send windows and variants"): create, list, read, change and
delete segments of the caller's tenants, and preview one. Parse, call services.segments, shape the output."""

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from channels_app import selectors
from channels_app.api.serializers import ModelSerializer, Serializer
from channels_app.errors import InvalidFields
from channels_app.models import Segment, Tenant
from channels_app.services import segments

TAGS = ["Segments"]


class SegmentSerializer(ModelSerializer):
    tenant = serializers.PrimaryKeyRelatedField(
        queryset=Tenant.objects.all(), required=False,
        help_text="One of the caller's tenants; omitted: the first of them. It never changes.")
    filter = serializers.JSONField(
        required=False,
        help_text='{"attributes": {"tier": "gold", "plan": {"in": ["a", "b"]}}, "channels": ["<channel_id>"], '
        '"countries": ["US"], "last_message_after": "<ISO 8601>", "last_message_before": "<ISO 8601>"}: every '
        "part given must hold. Attribute operators: eq (the default), ne, in, exists.")

    class Meta:
        model = Segment
        fields = ["id", "name", "tenant", "filter", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
        validators = []  # the name's uniqueness in its tenant: services.segments.segment_save (400 naming name)


class SegmentContactSerializer(Serializer):
    id = serializers.IntegerField()
    client_id = serializers.CharField()
    phone_number = serializers.CharField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    country = serializers.CharField()
    last_message_at = serializers.DateTimeField(allow_null=True)


class SegmentPreviewSerializer(Serializer):
    count = serializers.IntegerField(help_text="Contacts in the segment now.")
    sample = SegmentContactSerializer(many=True, help_text="The first ten of them, by id.")


@extend_schema_view(
    list=extend_schema(tags=TAGS, summary="Segments of the caller's tenants"),
    retrieve=extend_schema(tags=TAGS, summary="One segment"),
    create=extend_schema(tags=TAGS, summary="Create a segment", examples=[OpenApiExample(
        "Gold customers in the US who wrote this year", request_only=True, value={
            "name": "US gold", "tenant": 1, "filter": {"attributes": {"tier": "gold"}, "countries": ["US"],
                                                       "last_message_after": "2026-01-01T00:00:00Z"}})]),
    update=extend_schema(tags=TAGS, summary="Replace a segment"),
    partial_update=extend_schema(tags=TAGS, summary="Change a segment's name or filter"),
    destroy=extend_schema(tags=TAGS, summary="Delete a segment no campaign is built from"),
)
class SegmentViewSet(viewsets.ModelViewSet):
    """Segments: contacts chosen by attributes, channels, countries and the time of their last message. Another
    tenant's segment is 404; a filter's fault is 400 naming it (`filter.attributes.tier`, `filter.channels`)."""

    serializer_class = SegmentSerializer
    queryset = Segment.objects.none()  # the schema's model; get_queryset reads through the selectors
    filterset_fields = ["tenant"]

    def get_queryset(self):
        return selectors.segment_list(user=self.request.user).select_related("tenant").order_by("name", "pk")

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        tenant = data.get("tenant") or selectors.default_tenant(request.user)
        if tenant is None:
            raise InvalidFields({"tenant": ["You are a member of no tenant."]})
        segment = segments.segment_save(segment=Segment(tenant=tenant, name=data["name"]),
                                        filter_value=data.get("filter", {}), user=request.user)
        return Response(SegmentSerializer(segment).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        segment = self.get_object()
        serializer = self.get_serializer(segment, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "tenant" in data and data["tenant"] != segment.tenant:
            raise InvalidFields({"tenant": ["It cannot change."]})
        if "name" in data:
            segment.name = data["name"]
        segments.segment_save(segment=segment, filter_value=data.get("filter"))
        return Response(SegmentSerializer(segment).data)

    def perform_destroy(self, segment):
        segments.segment_delete(segment=segment)

    @extend_schema(tags=TAGS, summary="How many contacts the segment holds now, and a few of them",
                   request=None, responses={200: SegmentPreviewSerializer})
    @action(detail=True, methods=["get"])
    def preview(self, request, pk=None):
        """`{"count", "sample"}`: the contacts the segment holds now (a campaign built from it takes them when it
        starts) and the first ten by id, with the fields its recipients carry."""
        return Response(segments.segment_preview(segment=self.get_object()))
