"""The API doors the agents' page (`/workspace/`) needed and the rest of the API lacked; any API client may
use them the same way: the agents one may transfer to or invite, the caller's conversations with what waits
in each, and the channels a new session may use. Parse, call services.workspace, shape the output."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_app import selectors
from channels_app.api.routing_serializers import ReadySerializer
from channels_app.api.serializers import Serializer
from channels_app.errors import InvalidParameter
from channels_app.services.workspace import agent_conversations, session_channels, workspace_agents

TAGS = ["Routing"]


class WorkspaceAgentSerializer(Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    display_name = serializers.CharField(help_text="First and last name, else the username.")
    ready = ReadySerializer(help_text="Ready or not, per media.")
    capacity = serializers.IntegerField()
    assigned = serializers.IntegerField(help_text="Interactions assigned to the agent now.")


class ConversationContactSerializer(Serializer):
    id = serializers.IntegerField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    nickname = serializers.CharField()
    phone_number = serializers.CharField()
    email = serializers.CharField()
    attributes = serializers.DictField()


class LastMessageSerializer(Serializer):
    text = serializers.CharField(allow_blank=True)
    direction = serializers.CharField()
    created_at = serializers.DateTimeField()


class AgentConversationSerializer(Serializer):
    id = serializers.CharField()
    type = serializers.CharField()
    subtype = serializers.CharField()
    state = serializers.CharField()
    channel = serializers.CharField(source="channel.channel_id")
    media = serializers.CharField(source="channel.media_type", help_text="whatsapp, abc, sms or email.")
    client_id = serializers.CharField()
    queue = serializers.CharField()
    contact = serializers.IntegerField(source="contact_id", allow_null=True)
    contact_details = ConversationContactSerializer(source="contact", allow_null=True)
    assigned_to = serializers.IntegerField(source="assigned_to_id", allow_null=True)
    conference = serializers.SerializerMethodField(
        help_text="True: the caller is in its conference; it is assigned to another agent.")
    created_at = serializers.DateTimeField()
    unread = serializers.IntegerField(help_text="Customer messages since the last message to the customer.")
    waiting_since = serializers.DateTimeField(
        allow_null=True, help_text="The first of those: since when the customer waits for an answer (null: none).")
    last_message = serializers.SerializerMethodField()

    def get_conference(self, interaction) -> bool:
        return interaction.assigned_to_id != self.context["user"].pk

    @extend_schema_field(LastMessageSerializer(allow_null=True))
    def get_last_message(self, interaction) -> dict | None:
        if interaction.last_at is None:
            return None
        return LastMessageSerializer({"text": interaction.last_text, "direction": interaction.last_direction,
                                      "created_at": interaction.last_at}).data


class SessionChannelSerializer(Serializer):
    channel_id = serializers.CharField()
    name = serializers.CharField()
    media_type = serializers.CharField()
    business_id = serializers.CharField()
    own = serializers.BooleanField(help_text="The interaction's own channel.")


class AgentListView(APIView):
    """Who a conversation may be transferred to or shared with."""

    rights_name = "agents"

    @extend_schema(
        tags=TAGS, summary="The agents of the caller's tenants (who may use the workspace)",
        parameters=[OpenApiParameter("interaction", OpenApiTypes.STR, description=(
            "Only the agents of this interaction's tenant (the ones a transfer or a conference may name)."))],
        responses={200: WorkspaceAgentSerializer(many=True)},
    )
    def get(self, request):
        """Active users of the caller's tenants with Workspace - Can use, by name, with their readiness,
        capacity and how many interactions they hold. An unknown `interaction` is 400 naming it."""
        unknown = sorted(set(request.query_params) - {"interaction"})
        if unknown:
            raise InvalidParameter(f"Unknown parameter(s): {', '.join(unknown)}.", field=unknown[0])
        interaction_id = request.query_params.get("interaction")
        agents = workspace_agents(user=request.user, interaction_id=interaction_id)
        return Response(WorkspaceAgentSerializer(agents, many=True).data)


class AgentConversationsView(APIView):
    """The caller's conversations, for the list of the workspace."""

    rights_name = "agent-interactions"

    @extend_schema(tags=TAGS, summary="The caller's conversations, with what waits in each",
                   responses={200: AgentConversationSerializer(many=True)})
    def get(self, request):
        """Interactions not ended that are assigned to the caller or whose conference they are in, oldest
        first: with the contact, `unread` (customer messages since the last message to the customer),
        `waiting_since` and the last message."""
        conversations = agent_conversations(user=request.user)
        return Response(AgentConversationSerializer(conversations, many=True, context={"user": request.user}).data)


class InteractionSessionChannelsView(APIView):
    rights_name = "interaction-session-channels"

    @extend_schema(tags=["Interactions"], summary="The channels a new session may use from this interaction",
                   responses={200: SessionChannelSerializer(many=True)})
    def get(self, request, pk):
        """The interaction's own channel, then those its outbound session config lists
        (`_umsOutboundSessionConfig`, else the option `whatsappsession.outbound-session-config`) that are
        enabled channels of its tenant: the `channel` values `POST /api/interactions/{id}/sessions/` takes."""
        interaction = selectors.interaction_get(user=request.user, interaction_id=pk)
        channels = session_channels(user=request.user, interaction=interaction)
        rows = [{"channel_id": channel.channel_id, "name": channel.name, "media_type": channel.media_type,
                 "business_id": channel.business_id, "own": channel.pk == interaction.channel_id}
                for channel in channels]
        return Response(SessionChannelSerializer(rows, many=True).data)
