"""Serializers of the routing endpoints (API.md, "Routing to agents")."""

from django.contrib.auth import get_user_model
from rest_framework import serializers

from channels_app.api.serializers import ModelSerializer, Serializer
from channels_app.choices import MediaType
from channels_app.models import InteractionNote, Offer, Queue, QueueRouting, Tenant
from channels_app.models.routing import CAPACITY_MAX, CAPACITY_MIN
from channels_app.services.agent_events import offer_data
from channels_app.services.routing import oldest_waiting_seconds
from channels_app.validators import validate_queue_key_format


class QueueSerializer(ModelSerializer):
    tenant = serializers.PrimaryKeyRelatedField(
        queryset=Tenant.objects.all(), required=False,
        help_text="Omitted: the tenant of the key (`<tenant id>:...`) when it is one of the caller's.")
    routing = serializers.ChoiceField(QueueRouting.choices, default=QueueRouting.EXTERNAL)
    agents = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.all(), many=True, required=False,
        help_text="User ids: members of the queue's tenant with Workspace - Can use.")
    waiting = serializers.SerializerMethodField(help_text="Interactions in the queue not yet accepted.")
    oldest_waiting_seconds = serializers.SerializerMethodField(
        help_text="How long the interaction waiting longest has waited (null when none waits).")

    class Meta:
        model = Queue
        fields = ["key", "tenant", "routing", "offer_timeout_seconds", "agents", "waiting", "oldest_waiting_seconds"]
        # Unique: checked by the service (400 naming `key`).
        extra_kwargs = {"key": {"validators": [validate_queue_key_format]}}

    def get_waiting(self, queue) -> int:
        return getattr(queue, "waiting_count", 0)

    def get_oldest_waiting_seconds(self, queue) -> int | None:
        return oldest_waiting_seconds(getattr(queue, "oldest_queued_at", None))


class ReadySerializer(Serializer):
    """Per media: true when the agent takes interactions of it."""

    whatsapp = serializers.BooleanField(required=False)
    abc = serializers.BooleanField(required=False)
    sms = serializers.BooleanField(required=False)
    email = serializers.BooleanField(required=False)


class AgentStateSerializer(Serializer):
    ready = ReadySerializer(help_text="Ready or not, per media (" + ", ".join(MediaType.values) + ").")
    capacity = serializers.IntegerField(min_value=CAPACITY_MIN, max_value=CAPACITY_MAX,
                                        help_text="Interactions at once (1-20).")
    assigned = serializers.IntegerField(read_only=True, help_text="Interactions assigned to the agent now.")


class AgentStatePatchSerializer(Serializer):
    ready = ReadySerializer(required=False, help_text="Only the media named change.")
    capacity = serializers.IntegerField(min_value=CAPACITY_MIN, max_value=CAPACITY_MAX, required=False)


class OfferSerializer(ModelSerializer):
    interaction = serializers.CharField(source="interaction_id")
    queue = serializers.SerializerMethodField(help_text="The chat queue key it was offered from (null: by an agent).")
    contact = serializers.IntegerField(source="interaction.contact_id")
    preview = serializers.SerializerMethodField(help_text="The beginning of the customer's last message.")
    from_agent = serializers.IntegerField(source="from_agent_id", allow_null=True,
                                          help_text="Who transferred or invited (null: from the queue).")

    class Meta:
        model = Offer
        fields = ["id", "interaction", "queue", "contact", "preview", "expires_at", "kind", "subtype", "from_agent"]

    def to_representation(self, offer):
        return offer_data(offer)  # the same object the event stream's `offer` event carries

    def get_queue(self, offer) -> str | None:  # for the schema; to_representation answers
        return offer_data(offer)["queue"]

    def get_preview(self, offer) -> str:
        return offer_data(offer)["preview"]


class TransferRequestSerializer(Serializer):
    agent = serializers.JSONField(required=False, help_text="A user id of the tenant with Workspace - Can use.")
    queue = serializers.CharField(required=False, help_text="A chat queue key of the tenant routed by the server.")


class TransferResultSerializer(Serializer):
    interaction = serializers.CharField()
    agent = serializers.IntegerField(allow_null=True)
    queue = serializers.CharField(allow_null=True)
    offer = serializers.IntegerField(allow_null=True, help_text="The offer made to the agent (a transfer to a "
                                     "queue is offered from there).")


class ConferenceRequestSerializer(Serializer):
    agent = serializers.JSONField(required=False, help_text="A user id of the tenant with Workspace - Can use.")
    group = serializers.CharField(
        required=False, help_text="An agent group (by name): offered to its ready member idle longest among the "
        "agents of the queue the option intercommunication.whatsappsession.queue names.")


class NoteRequestSerializer(Serializer):
    text = serializers.CharField(trim_whitespace=False, help_text="At most 64 KiB of UTF-8.")


class NoteSerializer(ModelSerializer):
    interaction = serializers.CharField(source="interaction_id")
    author = serializers.CharField(source="author.username", allow_null=True, default=None)

    class Meta:
        model = InteractionNote
        fields = ["id", "interaction", "author", "text", "created_at"]
