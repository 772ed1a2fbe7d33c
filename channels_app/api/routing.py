"""The routing endpoints (API.md, "Routing to agents"): queues, the agent's own state and offers, accept and
reject, transfer, conference and notes. Parse, call services.routing, shape the output."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_app import selectors
from channels_app.api import routing_serializers as s
from channels_app.api.schema import ErrorSerializer
from channels_app.api.serializers import InteractionSerializer
from channels_app.errors import InvalidFields, InvalidParameter
from channels_app.models import Interaction, Offer, Queue
from channels_app.services import routing

TAGS = ["Routing"]


def _interaction_detail(interaction_id: str) -> Interaction:
    return Interaction.objects.select_related("channel").get(pk=interaction_id)


@extend_schema_view(
    list=extend_schema(tags=TAGS, summary="Chat queues, with what waits in each"),
    retrieve=extend_schema(tags=TAGS, summary="One chat queue"),
    create=extend_schema(tags=TAGS, summary="Create a queue (routed outside or by the server)", examples=[
        OpenApiExample("Routed by the server", request_only=True, value={
            "key": "1:session-chat", "routing": "workspace", "offer_timeout_seconds": 30, "agents": [3, 4]})]),
    update=extend_schema(tags=TAGS, summary="Replace a queue"),
    partial_update=extend_schema(tags=TAGS, summary="Change a queue"),
    destroy=extend_schema(tags=TAGS, summary="Delete a queue (its offers are withdrawn)"),
)
class QueueViewSet(viewsets.ModelViewSet):
    """Chat queues (ChatQueueKey) of the caller's tenants: `routing` `external` (an outside router, as before)
    or `workspace` (the server offers what enters them to their `agents`); `waiting` counts the interactions
    not yet accepted. Another tenant's key is 404."""

    serializer_class = s.QueueSerializer
    lookup_field = "key"
    lookup_value_regex = r"[^/]+"
    queryset = Queue.objects.none()  # the schema's model; get_queryset reads through the selectors

    def get_queryset(self):
        return routing.queues_with_waiting(selectors.queue_list(user=self.request.user).prefetch_related("agents"))

    def _tenant_of(self, data: dict, key: str):
        if data.get("tenant") is not None:
            return data["tenant"]
        prefix = key.split(":", 1)[0]
        tenant = selectors.tenant_list(user=self.request.user).filter(pk=int(prefix)).first() \
            if prefix.isdigit() else None
        if tenant is None:
            raise InvalidParameter(f"No tenant of yours for queue key {key!r}.", field="tenant")
        return tenant

    def _respond(self, queue: Queue, code=status.HTTP_200_OK) -> Response:
        return Response(s.QueueSerializer(self.get_queryset().get(pk=queue.pk)).data, status=code)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        queue = Queue(key=data["key"], tenant=self._tenant_of(data, data["key"]), routing=data["routing"])
        if "offer_timeout_seconds" in data:
            queue.offer_timeout_seconds = data["offer_timeout_seconds"]
        return self._respond(routing.queue_save(queue=queue, agents=data.get("agents", [])), status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        queue = self.get_object()
        serializer = self.get_serializer(queue, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        errors = {name: ["It cannot change."] for name, current in (("key", queue.key), ("tenant", queue.tenant))
                  if name in data and data[name] != current}
        if errors:
            raise InvalidFields(errors)
        for name in ("routing", "offer_timeout_seconds"):
            if name in data:
                setattr(queue, name, data[name])
        return self._respond(routing.queue_save(queue=queue, agents=data.get("agents")))

    def perform_destroy(self, queue):
        routing.queue_delete(queue=queue)


class AgentMeView(APIView):
    """The caller's state as an agent: ready per media, capacity, interactions assigned."""

    rights_name = "agent-me"

    @extend_schema(tags=TAGS, summary="The caller's agent state", responses={200: s.AgentStateSerializer})
    def get(self, request):
        return Response(s.AgentStateSerializer(routing.agent_state_get(user=request.user)).data)

    @extend_schema(
        tags=TAGS, summary="Become ready (per media) or not, change the capacity",
        request=s.AgentStatePatchSerializer, responses={200: s.AgentStateSerializer},
        examples=[OpenApiExample("Ready for WhatsApp, three at once", request_only=True,
                                 value={"ready": {"whatsapp": True}, "capacity": 3})],
    )
    def patch(self, request):
        """`ready` changes only the media it names (an unknown media is 400 naming `ready`); `capacity` is 1 to
        20 (400 naming `capacity`). Becoming ready, or more capacity, offers what waits in the caller's queues
        at once."""
        if not isinstance(request.data, dict):
            raise InvalidParameter("Invalid data: expected a JSON object.", field="non_field_errors")
        body = request.data
        unknown = sorted(set(body) - {"ready", "capacity"})
        if unknown:
            raise InvalidParameter(f"Unknown field(s): {', '.join(unknown)}.", field=unknown[0])
        state = routing.agent_state_update(user=request.user, ready=body.get("ready"), capacity=body.get("capacity"))
        return Response(s.AgentStateSerializer(state).data)


class AgentOffersView(APIView):
    """The caller's pending offers, oldest first."""

    rights_name = "agent-offers"

    @extend_schema(tags=TAGS, summary="The caller's pending offers", responses={200: s.OfferSerializer(many=True)})
    def get(self, request):
        return Response(s.OfferSerializer(routing.agent_offers(user=request.user), many=True).data)


class OfferViewSet(viewsets.GenericViewSet):
    """Accept or reject one of the caller's offers (another agent's offer is 404)."""

    queryset = Offer.objects.none()
    lookup_value_regex = r"[0-9]+"

    @extend_schema(tags=TAGS, summary="Accept an offer", request=None, responses={
        200: InteractionSerializer,
        409: OpenApiResponse(ErrorSerializer, "The offer has expired, was withdrawn, rejected or taken.")})
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        """The interaction is assigned to the caller (`assigned_to`); a transfer's sender lets it go; a
        conference invite (subtype InternalConferenceInvite) makes the caller a member of its conference."""
        interaction = routing.offer_accept(offer_id=pk, user=request.user)
        return Response(InteractionSerializer(_interaction_detail(interaction.pk)).data)

    @extend_schema(tags=TAGS, summary="Reject an offer", request=None, responses={
        200: s.OfferSerializer, 409: OpenApiResponse(ErrorSerializer, "The offer is not pending any more.")})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        """The interaction goes back to its queue and is offered to another agent (to the caller again only
        while nobody else is ready)."""
        return Response(s.OfferSerializer(routing.offer_reject(offer_id=pk, user=request.user)).data)


class InteractionTransferView(APIView):
    rights_name = "interaction-transfer"

    @extend_schema(
        tags=TAGS, summary="Transfer an interaction to an agent or a queue", request=s.TransferRequestSerializer,
        responses={202: s.TransferResultSerializer,
                   409: OpenApiResponse(ErrorSerializer, "The interaction is not assigned to the caller.")},
        examples=[OpenApiExample("To an agent", request_only=True, value={"agent": 4}),
                  OpenApiExample("To a queue", request_only=True, value={"queue": "1:billing"})],
    )
    def post(self, request, pk):
        """The target (an agent: an offer; a queue: offered from there) gets it; it stays with the caller
        until accepted. An agent outside the tenant or without Workspace - Can use is 400 naming `agent`."""
        interaction = selectors.interaction_get(user=request.user, interaction_id=pk)
        serializer = s.TransferRequestSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        done = routing.interaction_transfer(interaction_id=interaction.pk, sender=request.user,
                                            agent_id=data.get("agent"), queue_key=data.get("queue"))
        body = {"interaction": interaction.pk, "agent": done.offer.agent_id if done.offer else None,
                "queue": done.queue.key if done.queue else None, "offer": done.offer.pk if done.offer else None}
        return Response(body, status=status.HTTP_202_ACCEPTED)


class InteractionConferenceView(APIView):
    rights_name = "interaction-conference"

    @extend_schema(
        tags=TAGS, summary="Invite another agent to a conference", request=s.ConferenceRequestSerializer,
        responses={202: s.OfferSerializer,
                   409: OpenApiResponse(ErrorSerializer, "The caller does not hold the interaction, or nobody of "
                                        "the group is ready.")},
        examples=[OpenApiExample("An agent", request_only=True, value={"agent": 4})],
    )
    def post(self, request, pk):
        """The invited agent gets an offer of subtype `InternalConferenceInvite`; once accepted both see and
        send messages. Oneself is 400 naming `agent`."""
        interaction = selectors.interaction_get(user=request.user, interaction_id=pk)
        serializer = s.ConferenceRequestSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        offer = routing.interaction_conference(interaction_id=interaction.pk, sender=request.user,
                                               agent_id=data.get("agent"), group=data.get("group"))
        return Response(s.OfferSerializer(offer).data, status=status.HTTP_202_ACCEPTED)


class InteractionNotesView(APIView):
    rights_name = "interaction-notes"

    @extend_schema(tags=TAGS, summary="The notes of an interaction", responses={200: s.NoteSerializer(many=True)})
    def get(self, request, pk):
        interaction = selectors.interaction_get(user=request.user, interaction_id=pk)
        return Response(s.NoteSerializer(routing.interaction_notes(interaction=interaction), many=True).data)

    @extend_schema(tags=TAGS, summary="Add a note (history only, never sent to the customer)",
                   request=s.NoteRequestSerializer, responses={201: s.NoteSerializer})
    def post(self, request, pk):
        """A NUL character or more than 64 KiB of UTF-8 is 400 naming `text`."""
        interaction = selectors.interaction_get(user=request.user, interaction_id=pk)
        serializer = s.NoteRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        note = routing.interaction_note_add(interaction=interaction, author=request.user,
                                            text=serializer.validated_data["text"])
        return Response(s.NoteSerializer(note).data, status=status.HTTP_201_CREATED)
