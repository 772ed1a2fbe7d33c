from collections.abc import Mapping

from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.http import QueryDict
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from channels_app.api.lifecycle import LastPurgeField, RetentionDaysField
from channels_app.models import (
    Attachment,
    AuditEntry,
    BusinessAttribute,
    BusinessAttributeValue,
    Campaign,
    CampaignRecipient,
    Channel,
    Contact,
    Interaction,
    Message,
    MessageAttachmentStatus,
    Segment,
    StandardResponse,
    StandardResponseCategory,
    Tenant,
)
from channels_app.selectors import is_scoped, restrict
from channels_app.services.tenants import ID_CHOSEN_BY_SUPERUSERS
from channels_app.services.transcripts import transcript


def _json_type_error(field, value) -> str | None:
    """Why `value` (from a JSON body) is not of the JSON type `field` documents, or None."""
    if value is None:
        return None  # the field itself refuses null unless it allows it
    if isinstance(field, serializers.ManyRelatedField):
        if not isinstance(value, list):
            return "Expected a list of ids."
        return next(filter(None, (_json_type_error(field.child_relation, item) for item in value)), None)
    if isinstance(field, serializers.ListField):
        if not isinstance(value, list):
            return None  # DRF names it
        return next(filter(None, (_json_type_error(field.child, item) for item in value)), None)
    if isinstance(field, serializers.PrimaryKeyRelatedField):
        integer_ids = field.queryset is not None and isinstance(field.queryset.model._meta.pk, models.IntegerField)
        wanted = int if integer_ids else str
    elif isinstance(field, serializers.BooleanField):
        wanted = bool
    elif isinstance(field, serializers.IntegerField):
        wanted = int
    elif isinstance(field, serializers.FloatField):
        wanted = (int, float)
    elif isinstance(field, (serializers.CharField, serializers.SlugRelatedField, serializers.DateTimeField)):
        wanted = str
    else:
        return None
    if isinstance(value, bool) and wanted is not bool:
        return "Expected a number." if wanted is not str else "Expected a string."
    if not isinstance(value, wanted):
        return {bool: "Expected true or false.", int: "Expected an integer.", str: "Expected a string."}.get(
            wanted, "Expected a number.")
    if isinstance(field, serializers.CharField) and field.max_length is not None and len(value) > field.max_length:
        # DRF counts after trimming the white space; the document's maxLength is about what is sent.
        return f"Ensure this field has no more than {field.max_length} characters."
    return None


# JSON bodies are type-checked as the OpenAPI document says: DRF would take 5 for "5", "5" for 5 and
# "yes" for true (and a text one character too long when it starts with a space); the API refuses them,
# naming the field. Forms carry only text and are left to DRF. (A comment, not a docstring: drf-spectacular
# would copy a docstring into the schema's descriptions.)
class StrictJsonTypes:

    def to_internal_value(self, data):
        if isinstance(data, Mapping) and not isinstance(data, QueryDict):
            errors = {}
            for name, field in self.fields.items():
                if not field.read_only and name in data and (error := _json_type_error(field, data[name])):
                    errors[name] = [error]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class ScopedRelations:
    """Related fields offer only what the caller's tenants hold, so another
    tenant's id in any field is "does not exist", as an unknown id is."""

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is None:
            return fields  # output only: the objects were read through the selectors
        for field in fields.values():
            relation = field.child_relation if isinstance(field, serializers.ManyRelatedField) else field
            queryset = getattr(relation, "queryset", None)
            if isinstance(relation, serializers.RelatedField) and queryset is not None and is_scoped(queryset.model):
                relation.queryset = restrict(queryset, request.user)
        return fields


class Serializer(ScopedRelations, StrictJsonTypes, serializers.Serializer):
    pass


class ModelSerializer(ScopedRelations, StrictJsonTypes, serializers.ModelSerializer):
    pass


class TokenRequestSerializer(Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)

    def authenticated_user(self):
        data = self.validated_data
        return authenticate(request=self.context.get("request"), username=data["username"], password=data["password"])


class TokenSerializer(Serializer):
    token = serializers.CharField()


class ChosenIdMixin:
    """The client chooses the `id` when creating (a tenant id, a StandardResponseId); it never changes after:
    an update may repeat it, not change it (ignoring it would hide the client's mistake)."""

    def validate_id(self, value):
        if self.instance is not None and not isinstance(self.instance, list):
            if value != self.instance.pk:
                raise serializers.ValidationError(f"The id cannot change (it is {self.instance.pk!r}).")
            return value
        model = self.Meta.model
        if model.objects.filter(pk=value).exists():
            raise serializers.ValidationError(f"A {model._meta.verbose_name} with id {value!r} already exists.")
        return value


class TenantSerializer(ChosenIdMixin, ModelSerializer):
    id = serializers.IntegerField(
        min_value=1, max_value=2147483647, required=False,
        help_text="Chosen by a superuser only; left out, an id is assigned.",
    )
    retention_days = RetentionDaysField(
        required=False,
        help_text="Days each class of data is kept (conversations, deliveries, campaigns, audit): a whole number "
        "0..36500, or null to keep for ever (the default). A PATCH changes the classes it names.",
    )
    last_purge = LastPurgeField(help_text='The last purge: {"at", "removed": {"interactions": n, ...}}; null: never.')

    def validate_id(self, value):
        request = self.context.get("request")
        if self.instance is None and request is not None and not request.user.is_superuser:
            # Whatever the id: an answer that differs for a taken one would tell other tenants' ids.
            raise serializers.ValidationError(ID_CHOSEN_BY_SUPERUSERS)
        return super().validate_id(value)

    class Meta:
        model = Tenant
        fields = ["id", "name", "retention_days", "timezone", "last_purge", "created_at"]
        read_only_fields = ["created_at"]


class EndpointListField(serializers.ListField):
    """A channel's endpoints, read and written as a list of chat queue keys."""

    child = serializers.CharField(max_length=200)

    def to_representation(self, endpoints):
        return [endpoint.queue_key for endpoint in endpoints.all()]


class InboundRouteField(serializers.CharField):
    """The channel's `inbound-route-by-call` option, read through the options service."""

    def __init__(self, **kwargs):
        super().__init__(source="*", **kwargs)

    def to_representation(self, channel):
        from channels_app.services.channels import channel_inbound_route

        return channel_inbound_route(channel=channel)

    def to_internal_value(self, data):
        return {"inbound_route_by_call": super().to_internal_value(data)}


class ChannelSerializer(ModelSerializer):
    """A channel; `secret` is write-only (generated when left blank)."""

    tenant = serializers.PrimaryKeyRelatedField(queryset=Tenant.objects.all())
    secret = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=128)
    endpoints = EndpointListField(required=False, help_text="Chat queue keys, e.g. 1:session-chat.")
    inbound_route_by_call = InboundRouteField(
        required=False, allow_blank=True, max_length=200, help_text="The channel's inbound-route-by-call queue key."
    )
    has_secret = serializers.SerializerMethodField()
    # WhatsApp Cloud API: the token and the app secret are write-only, as the secret is.
    access_token = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=1024)
    app_secret = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=256)
    has_access_token = serializers.SerializerMethodField()
    has_app_secret = serializers.SerializerMethodField()
    # Generated when left blank on a whatsapp_cloud channel. It stays readable here, as the contract lists it
    # among the channel's fields (only access_token and app_secret are write-only); the admin shows it once.
    has_verify_token = serializers.SerializerMethodField()

    class Meta:
        model = Channel
        fields = [
            "channel_id", "name", "tenant", "media_type", "transport", "business_id", "webhook_url", "secret",
            "has_secret", "retry_timeout_seconds", "retry_attempts", "enabled", "endpoints",
            "inbound_route_by_call", "phone_number_id", "waba_id", "access_token", "has_access_token",
            "app_secret", "has_app_secret", "verify_token", "has_verify_token", "throughput_per_second",
            "needs_attention",
            "created_at", "updated_at",
        ]
        read_only_fields = ["needs_attention", "created_at", "updated_at"]
        # Model validation (uniqueness included) runs in the channel_save service.
        extra_kwargs = {"channel_id": {"validators": []}}

    def get_has_secret(self, channel) -> bool:
        return bool(channel.secret)

    def get_has_access_token(self, channel) -> bool:
        return bool(channel.access_token)

    def get_has_app_secret(self, channel) -> bool:
        return bool(channel.app_secret)

    def get_has_verify_token(self, channel) -> bool:
        return bool(channel.verify_token)


class OptionSerializer(Serializer):
    name = serializers.CharField(source="definition.name")
    section = serializers.CharField(source="definition.section")
    value = serializers.CharField()
    default = serializers.CharField(source="definition.default")
    valid_values = serializers.CharField(source="definition.valid_values")
    takes_effect = serializers.CharField(source="definition.takes_effect")
    read_by = serializers.CharField(
        source="definition.read_by", help_text="server: it changes what this server does; workspace: this "
        "server's agents' page (/workspace/) reads it; desktop: the agent "
        "desktop reads it (kept here so one place holds the configuration); platform: another component does.",
    )
    type = serializers.CharField(source="definition.type")
    description = serializers.CharField(source="definition.description")
    channel = serializers.SerializerMethodField()
    overridden = serializers.BooleanField()

    def get_channel(self, option) -> str | None:
        return option.channel.channel_id if option.channel else None


class OptionUpdateSerializer(Serializer):
    value = serializers.JSONField(help_text="The new value (text, number or boolean).")
    channel = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="A channel id: set this channel's override instead of the global value.",
    )

    def validate_value(self, value):
        if isinstance(value, (dict, list)):
            import json

            return json.dumps(value)
        return value


class BusinessAttributeValueSerializer(ModelSerializer):
    annex = serializers.JSONField(required=False)

    class Meta:
        model = BusinessAttributeValue
        fields = ["id", "name", "display_name", "description", "annex", "is_default", "order"]
        read_only_fields = ["id"]
        extra_kwargs = {"order": {"required": False}}


class BusinessAttributeSerializer(ModelSerializer):
    values = BusinessAttributeValueSerializer(many=True, required=False)

    class Meta:
        model = BusinessAttribute
        fields = ["id", "name", "display_name", "type", "description", "values"]
        read_only_fields = ["id"]
        extra_kwargs = {"name": {"validators": []}}


class StandardResponseCategorySerializer(ModelSerializer):
    path = serializers.CharField(read_only=True)
    tenant = serializers.PrimaryKeyRelatedField(
        queryset=Tenant.objects.all(), required=False,
        help_text="Omitted: the parent's tenant, else the first of the caller's tenants.",
    )

    class Meta:
        model = StandardResponseCategory
        fields = ["id", "tenant", "name", "parent", "path"]
        validators = []  # uniqueness is checked by the model in the service


class AttachmentSerializer(ModelSerializer):
    file = serializers.FileField(write_only=True)
    url = serializers.SerializerMethodField()
    tenant = serializers.PrimaryKeyRelatedField(
        queryset=Tenant.objects.all(), required=False, help_text="Omitted: the first of the caller's tenants."
    )

    class Meta:
        model = Attachment
        fields = ["id", "tenant", "file", "name", "kind", "mime_type", "size", "url", "created_at"]
        read_only_fields = ["kind", "mime_type", "size", "created_at"]
        # Left blank, the file's name is used.
        extra_kwargs = {"name": {"required": False, "allow_blank": True}}

    def get_url(self, attachment) -> str:
        request = self.context.get("request")
        url = attachment.file.url
        return request.build_absolute_uri(url) if request else url


class StandardResponseSerializer(ChosenIdMixin, ModelSerializer):
    id = serializers.CharField(required=False, max_length=32, help_text="StandardResponseId; generated when omitted.")
    tenant = serializers.PrimaryKeyRelatedField(
        queryset=Tenant.objects.all(), required=False,
        help_text="Omitted: the category's tenant, else the first of the caller's tenants.",
    )
    category = serializers.PrimaryKeyRelatedField(
        queryset=StandardResponseCategory.objects.all(), required=False, allow_null=True
    )
    structured = serializers.JSONField(required=False)
    attachments = serializers.PrimaryKeyRelatedField(queryset=Attachment.objects.all(), many=True, required=False)
    field_codes = serializers.SerializerMethodField()
    templates = serializers.SerializerMethodField(help_text="Its WhatsApp template status on each Cloud API channel.")

    class Meta:
        model = StandardResponse
        fields = [
            "id", "tenant", "name", "category", "language", "content_type", "body", "structured", "attachments",
            "field_codes", "templates", "created_at", "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def get_field_codes(self, response) -> list[str]:
        return response.field_codes()

    def get_templates(self, response) -> list[dict]:
        if not response.pk:
            return []
        return [WhatsAppTemplateSerializer(row).data for row in response.whatsapp_templates.all()]


class WhatsAppTemplateSerializer(Serializer):
    channel = serializers.CharField(source="channel.channel_id")
    name = serializers.CharField()
    language = serializers.CharField()
    category = serializers.CharField()
    template_id = serializers.CharField()
    template_status = serializers.CharField(source="status")
    reason = serializers.CharField()
    submitted_at = serializers.DateTimeField()


class TemplateSubmitSerializer(Serializer):
    channel = serializers.CharField(max_length=100, help_text="A whatsapp_cloud channel id.")
    category = serializers.ChoiceField(choices=["UTILITY", "MARKETING", "AUTHENTICATION"], default="UTILITY")


class RenderRequestSerializer(Serializer):
    def get_fields(self):
        # Declared here: a class attribute named `fields` would hide Serializer.fields.
        return {
            "fields": serializers.DictField(
                required=False,
                help_text='{"Contact": {...}, "Agent": {...}, "Interaction": {...}, "CustomProperties": {...}}',
            )
        }

    def validate_fields(self, value):
        for key, section in value.items():
            if key not in {"Contact", "Agent", "Interaction", "CustomProperties"}:
                raise serializers.ValidationError(
                    f"Unknown field code object {key!r}: use Contact, Agent, Interaction or CustomProperties."
                )
            if not isinstance(section, (dict, list)):
                raise serializers.ValidationError(f"{key} must be an object.")
        return value


class RenderResponseSerializer(Serializer):
    payload = serializers.DictField()
    missing = serializers.ListField(child=serializers.CharField())


class EmojiSerializer(Serializer):
    code = serializers.CharField()
    emoji = serializers.CharField()


_prototypes: dict[type, Serializer] = {}


def represent(serializer_class: type[Serializer], instance) -> dict:
    """`serializer_class(instance).data`, read through one instance of the serializer per process: DRF builds
    a serializer's fields anew for every instance (about a millisecond for a model's), and a representation
    without context needs them built only once. For the hot paths (an agent message's answer)."""
    prototype = _prototypes.get(serializer_class)
    if prototype is None:
        prototype = _prototypes[serializer_class] = serializer_class()
        prototype.fields  # noqa: B018 - built now, before threads share it
    return prototype.to_representation(instance)


class MessageSerializer(ModelSerializer):
    class Meta:
        model = Message
        fields = [
            "id", "direction", "text", "status", "reasons", "payload", "external_id", "trace_id", "origin_time",
            "created_at", "sent_at", "delivered_at",
        ]


class InteractionListSerializer(ModelSerializer):
    channel = serializers.CharField(source="channel.channel_id")
    contact = serializers.IntegerField(source="contact_id")
    assigned_to = serializers.IntegerField(
        source="assigned_to_id", allow_null=True, read_only=True,
        help_text="The agent who accepted it (queues routed by the server); null otherwise.")

    class Meta:
        model = Interaction
        fields = [
            "id", "type", "subtype", "state", "channel", "client_id", "queue", "contact", "created_at",
            "last_activity_at", "ended_at", "end_reason", "disposition", "assigned_to",
        ]


class MediaAttachmentSerializer(Serializer):
    id = serializers.IntegerField(required=False, help_text="A customer's attachment (inbound).")
    attachment = serializers.IntegerField(required=False, help_text="The attachment sent (outbound).")
    fileName = serializers.CharField()
    contentType = serializers.CharField()
    size = serializers.IntegerField(allow_null=True)
    status = serializers.ChoiceField(MessageAttachmentStatus.choices)
    url = serializers.URLField(allow_null=True, help_text="A signed link, valid for MEDIA_URL_TTL, once stored.")
    thumbnailUrl = serializers.URLField(required=False, help_text="An image's thumbnail (signed link).")
    reason = serializers.CharField(required=False, help_text="Why it failed.")


class TranscriptMessageSerializer(MessageSerializer):
    """A message of the transcript, with its files and, for a location, the location and its map link. The
    schema of what services/transcripts.py writes (it reads and writes the rows itself: issue 24, "Speed")."""

    attachments = MediaAttachmentSerializer(many=True, read_only=True)
    location = serializers.DictField(read_only=True, allow_null=True)

    class Meta(MessageSerializer.Meta):
        fields = [*MessageSerializer.Meta.fields, "attachments", "location"]


class InteractionFieldsSerializer(InteractionListSerializer):
    """An interaction's fields above its transcript: InteractionSerializer without `messages` (its retrieve
    writes the transcript PostgreSQL wrote after them, api/renderers.py)."""

    window_closes_at = serializers.SerializerMethodField(
        help_text="WhatsApp: when the customer's 24-hour window closes (null: closed since it never opened, or "
        "not a WhatsApp channel); after it only notifications can be sent.")

    class Meta(InteractionListSerializer.Meta):
        fields = [*InteractionListSerializer.Meta.fields, "user_data", "last_customer_message_at",
                  "window_closes_at", "session_options"]

    def get_window_closes_at(self, interaction) -> str | None:
        from channels_app.services.windows import customer_window_closes_at, window_applies

        if not window_applies(interaction.channel):
            return None
        closes_at = customer_window_closes_at(interaction=interaction)
        return serializers.DateTimeField().to_representation(closes_at) if closes_at else None


class InteractionSerializer(InteractionFieldsSerializer):
    messages = serializers.SerializerMethodField()

    class Meta(InteractionFieldsSerializer.Meta):
        fields = [*InteractionFieldsSerializer.Meta.fields, "messages"]

    @extend_schema_field(TranscriptMessageSerializer(many=True))
    def get_messages(self, interaction) -> list[dict]:
        return transcript(interaction=interaction)


class HistoryInteractionSerializer(InteractionListSerializer):
    """An earlier interaction of the contact with its messages (`transcripts` in the context: all of them
    read at once by services/transcripts.py)."""

    messages = serializers.SerializerMethodField()

    class Meta(InteractionListSerializer.Meta):
        fields = [*InteractionListSerializer.Meta.fields, "messages"]

    @extend_schema_field(MessageSerializer(many=True))
    def get_messages(self, interaction) -> list[dict]:
        return self.context["transcripts"][interaction.pk]


class HistorySerializer(Serializer):
    interaction = serializers.CharField(help_text="The interaction whose history this is.")
    transcript_interactions_count = serializers.IntegerField(
        help_text="whatsappsession.transcript-interactions-count of the interaction.")
    show_cross_channel_messages = serializers.BooleanField(
        help_text="whatsappsession.show-cross-channel-messages of the interaction.")
    interactions = HistoryInteractionSerializer(many=True)


class EndRequestSerializer(Serializer):
    disposition = serializers.CharField(
        required=False, allow_blank=True, max_length=128,
        help_text="A value (its name) of the Disposition Code business attribute.")


class AgentMessageResultSerializer(MessageSerializer):
    sent_as = serializers.CharField(
        read_only=True, help_text='"text", the standard response\'s content type, or "notification" when the text '
        "went inside the default notification template (WhatsApp, outside the 24-hour window).")

    class Meta(MessageSerializer.Meta):
        fields = [*MessageSerializer.Meta.fields, "sent_as"]


class NewSessionResultSerializer(InteractionSerializer):
    sent_as = serializers.CharField(read_only=True, help_text="How the first message was sent (see agent messages).")

    class Meta(InteractionSerializer.Meta):
        fields = [*InteractionSerializer.Meta.fields, "sent_as"]


class OptedOutField(serializers.ListField):
    """The channel ids the contact opted out of (API.md "Opt-out"); PATCH replaces them."""

    def get_attribute(self, contact):
        return contact

    def to_representation(self, contact):
        return sorted(opt_out.channel.channel_id for opt_out in contact.opt_outs.all())


class ContactSerializer(ModelSerializer):
    interactions = serializers.SerializerMethodField()
    opted_out = OptedOutField(child=serializers.CharField(max_length=100), required=False,
                              help_text="Channel ids the contact opted out of.")

    class Meta:
        model = Contact
        fields = [
            "id", "tenant", "phone_number", "client_id", "first_name", "last_name", "email", "nickname", "attributes",
            "country", "last_message_at", "created_at", "updated_at", "interactions", "opted_out",
        ]
        # country (from the phone number) and last_message_at (kept by inbound messages) are what segments filter on
        read_only_fields = ["id", "tenant", "phone_number", "client_id", "country", "last_message_at", "created_at",
                            "updated_at"]
        extra_kwargs = {"email": {"help_text": "An e-mail address, or empty."}}

    def get_interactions(self, contact) -> list[str]:
        return [interaction.pk for interaction in contact.interactions.all()]

    def validate_email(self, value):
        from django.core.validators import validate_email

        if value:
            try:
                validate_email(value)
            except DjangoValidationError as error:
                raise serializers.ValidationError("Enter a valid e-mail address.") from error
        return value

    def validate_attributes(self, value):
        # The contact's other attributes (the workspace's panel edits them): names and values are short texts.
        if not isinstance(value, dict):
            raise serializers.ValidationError("Expected an object of attribute names and values.")
        if len(value) > 100:
            raise serializers.ValidationError("At most 100 attributes.")
        for key, item in value.items():
            if not key or len(key) > 100:
                raise serializers.ValidationError(f"Attribute name {key[:100]!r}: 1 to 100 characters.")
            if not isinstance(item, str) or len(item) > 1000:
                raise serializers.ValidationError(f"Attribute {key!r}: a text of at most 1000 characters.")
        return value


class AgentMessageSerializer(Serializer):
    text = serializers.CharField(required=False, trim_whitespace=False, help_text="Plain text.")
    standard_response_id = serializers.CharField(required=False, help_text="Or a standard response...")

    location = serializers.DictField(
        required=False, help_text='Or a location: {"latitude", "longitude", "name", "address", "url"}.'
    )
    attachments = serializers.ListField(
        child=serializers.IntegerField(), required=False, max_length=10,
        help_text="Ids of files uploaded with POST /api/attachments/, each sent after the text as a message of "
        "its own (the text may then be left out). On WhatsApp this needs WhatsApp - Can Send Files.",
    )

    header_attachment = serializers.IntegerField(
        required=False, min_value=1,
        help_text="With a standard response whose header is a file (a rich media notification, reply buttons): "
        "the id of a file of POST /api/attachments/, of the same kind (image, video, document), sent in its "
        "place. Needs WhatsApp - Can Change Attachments in Notification, or in Reply Button.",
    )

    def get_fields(self):
        fields = super().get_fields()
        fields["fields"] = serializers.DictField(required=False, help_text="...with its field values.")
        return fields

    def validate(self, attrs):
        given = [key for key in ("text", "standard_response_id", "location") if attrs.get(key) not in (None, "")]
        if len(given) > 1 or (not given and not attrs.get("attachments")):
            raise serializers.ValidationError(
                {"text": ["Send one of text, standard_response_id or location (or only attachments)."]}
            )
        if attrs.get("header_attachment") is not None and not attrs.get("standard_response_id"):
            raise serializers.ValidationError(
                {"header_attachment": ["Replaces the file of a standard response's header: name the response."]}
            )
        return attrs


class NewSessionRequestSerializer(AgentMessageSerializer):
    channel = serializers.CharField(
        max_length=100, help_text="The channel_id of the new session: the interaction's own, or one of the "
        "outbound session config.")


def _terminate_sessions_field() -> serializers.BooleanField:
    """A form (multipart) that leaves the field out means the model's default, as JSON does: DRF reads an
    absent boolean of a form as an unticked checkbox (False) unless the field has a default."""
    model_field = Campaign._meta.get_field("terminate_sessions")
    return serializers.BooleanField(required=False, default=model_field.default, help_text=model_field.help_text)


class CampaignVariantSerializer(Serializer):
    standard_response = serializers.CharField(help_text="A standard response of the channel's tenant.")
    share = serializers.IntegerField(help_text="Percent of the audience; the shares add up to 100.")


class CampaignSerializer(ModelSerializer):
    channel = serializers.SlugRelatedField(slug_field="channel_id", queryset=Channel.objects.all())
    standard_response = serializers.PrimaryKeyRelatedField(
        queryset=StandardResponse.objects.all(), required=False,
        help_text="Required without variants; with them, the first variant's when left out.")
    variants = serializers.JSONField(
        required=False, write_only=True,
        help_text='2 to 5 [{"standard_response": "<id>", "share": 50}, ...] whose shares add up '
        "to 100: each recipient is sent one, the same on every run (services/variants.py).")
    recipients = serializers.ListField(
        child=serializers.DictField(), required=False, write_only=True,
        help_text='[{"client_id": "15556667777", "Contact": {...}, "CustomProperties": {...}}]',
    )
    terminate_sessions = _terminate_sessions_field()
    segment = serializers.PrimaryKeyRelatedField(
        queryset=Segment.objects.all(), required=False, allow_null=True,
        help_text="Instead of recipients: a segment of the channel's tenant, whose contacts the campaign takes "
        "when it starts.")
    send_window = serializers.JSONField(
        required=False, allow_null=True,
        help_text='{"from": "09:00", "to": "20:00", "days": ["mon", "tue", "wed", "thu", "fri"], "timezone": '
        '"recipient"} (or an IANA zone name): each recipient is sent to only inside it, in its zone; null: any '
        "time.")
    audience_upload = serializers.SerializerMethodField(
        help_text='The last audience upload: {"state": "done"|"loading"|"stopped", "file", "lines", "rows_read", '
        '"accepted", "rejected", "duplicates", "at", "updated_at"} (counts of rows), or null.')
    total = serializers.IntegerField(read_only=True, help_text="Rows of the audience, refused ones included.")
    refused = serializers.IntegerField(read_only=True, help_text="Rows refused at upload or whose invitation failed.")
    pending = serializers.IntegerField(read_only=True)
    sent = serializers.IntegerField(read_only=True)
    delivered = serializers.IntegerField(read_only=True)
    failed = serializers.IntegerField(read_only=True)
    waiting = serializers.IntegerField(
        read_only=True, help_text="Of the pending: recipients outside the send window, waiting for it to open.")

    class Meta:
        model = Campaign
        fields = [
            "id", "name", "channel", "standard_response", "chat_queue_key", "terminate_sessions", "rate_per_second",
            "start_at", "segment", "send_window", "state", "recipients", "variants", "audience_upload", "total",
            "refused", "pending", "sent", "delivered", "failed", "waiting", "created_at", "started_at", "finished_at",
        ]
        read_only_fields = ["state", "created_at", "started_at", "finished_at"]

    def get_audience_upload(self, campaign) -> dict | None:
        report = campaign.upload_report or {}
        if not report:
            return None
        return {"state": report.get("state", "done"), "file": report.get("file", ""),
                "lines": report.get("lines"), "rows_read": report.get("rows_read"),
                "accepted": report.get("accepted", 0), "rejected": report.get("rejected_total", 0),
                "duplicates": report.get("duplicates_total", 0), "at": report.get("at"),
                "updated_at": report.get("updated_at", report.get("at"))}

    def to_representation(self, campaign):
        from django.utils import timezone

        from channels_app.services.campaigns import campaign_counts
        from channels_app.services.send_windows import waiting_recipients

        data = super().to_representation(campaign)
        data.update(campaign_counts(campaign=campaign))
        data["variants"] = [{"standard_response": variant.standard_response_id, "share": variant.share}
                            for variant in campaign.variants.all()]
        data["waiting"] = waiting_recipients(campaign=campaign, now=timezone.now())
        return data


class CampaignUploadSerializer(ModelSerializer):
    """A campaign created from a form, with its audience as a CSV `file`."""

    channel = serializers.SlugRelatedField(slug_field="channel_id", queryset=Channel.objects.all())
    file = serializers.FileField(required=False, help_text="CSV: client_id, Contact.<name>, CustomProperties.<name>")
    terminate_sessions = _terminate_sessions_field()
    variants = serializers.JSONField(required=False, help_text="As in JSON, as a JSON text.")

    class Meta:
        model = Campaign
        fields = ["name", "channel", "standard_response", "chat_queue_key", "terminate_sessions", "rate_per_second",
                  "start_at", "file", "variants"]


class RecipientsRequestSerializer(Serializer):
    recipients = serializers.ListField(
        child=serializers.DictField(),
        help_text='[{"client_id": "15556667777", "Contact": {...}, "CustomProperties": {...}}]',
    )


class RecipientsUploadSerializer(Serializer):
    file = serializers.FileField(help_text="CSV: client_id, Contact.<name>, CustomProperties.<name>")


class AudienceReportSerializer(Serializer):
    state = serializers.ChoiceField(
        ["done", "loading"], help_text="loading: a large CSV read in the background (the campaign's "
        "audience_upload shows how far); the counts below are then those of the rows read so far (none).")
    accepted = serializers.IntegerField()
    duplicates = serializers.ListField(child=serializers.IntegerField(), help_text="Rows sent once, with an "
                                      "earlier row.")
    rejected = serializers.ListField(child=serializers.DictField(), help_text='{"row", "client_id", "errors"}')
    duplicate_rows = serializers.ListField(child=serializers.DictField(), help_text="The repeated rows, listed "
                                          'as the rejected ones: {"row", "client_id", "errors"}.')
    lines = serializers.IntegerField(required=False, help_text="loading: the lines of the file (about its rows).")


class RecipientSerializer(ModelSerializer):
    status = serializers.CharField(read_only=True)
    message = serializers.CharField(source="message_id", read_only=True)
    reasons = serializers.SerializerMethodField()

    class Meta:
        model = CampaignRecipient
        fields = ["row_number", "client_id", "status", "message", "reasons", "error", "variant", "reached_at",
                  "replied_at", "opted_out_at"]

    def get_reasons(self, recipient) -> list:
        return recipient.message.reasons if recipient.message else []


class PaginatedRecipientListSerializer(Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = RecipientSerializer(many=True)


class ChannelCreatedSerializer(ChannelSerializer):
    """The answer that created a channel: its generated secret (and a Cloud API channel's generated verify
    token), shown this once."""

    secret = serializers.CharField(read_only=True, help_text="The generated secret; never shown again.")
    verify_token = serializers.CharField(
        read_only=True, required=False,
        help_text="WhatsApp Cloud API: the generated verify token (when none was given); never shown again.")

    class Meta(ChannelSerializer.Meta):
        pass


class RotateSecretSerializer(Serializer):
    grace_hours = serializers.IntegerField(
        required=False, default=0, min_value=0, max_value=24,
        help_text="For how many hours (0 to 24) inbound requests signed with the old secret are still accepted.")


class SecretSerializer(Serializer):
    secret = serializers.CharField(help_text="The new secret; never shown again.")
    previous_secret_valid_until = serializers.DateTimeField(
        allow_null=True, help_text="Until when the old secret is still accepted (null: no longer).")


class VerifyTokenSerializer(Serializer):
    verify_token = serializers.CharField(help_text="The new verify token; never shown again.")


class UserSerializer(ModelSerializer):
    """A user with its groups (roles, by name) and tenants (ids)."""

    password = serializers.CharField(
        write_only=True, required=False, trim_whitespace=False, style={"input_type": "password"},
        help_text="Required on create. A new password revokes the user's tokens.",
    )
    groups = serializers.SlugRelatedField(
        slug_field="name", many=True, required=False, queryset=Group.objects.all(),
        help_text='Group names, e.g. ["WhatsApp agent"].',
    )
    tenants = serializers.PrimaryKeyRelatedField(
        many=True, required=False, write_only=True, queryset=Tenant.objects.all(),
        help_text="Tenant ids the user is a member of.",
    )

    class Meta:
        model = get_user_model()
        fields = [
            "id", "username", "password", "email", "groups", "tenants", "is_staff", "is_active", "is_superuser",
            "last_login", "date_joined",
        ]
        read_only_fields = ["is_superuser", "last_login", "date_joined"]
        extra_kwargs = {"is_staff": {"required": False, "default": True}}

    def to_representation(self, user):
        data = super().to_representation(user)
        visible = self.context.get("visible_tenant_ids")
        data["tenants"] = sorted(
            membership.tenant_id for membership in user.memberships.all()
            if visible is None or membership.tenant_id in visible
        )
        return data

    def validate(self, attrs):
        if self.instance is None and not attrs.get("password"):
            raise serializers.ValidationError({"password": ["This field is required."]})
        return attrs


class AuditEntrySerializer(ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["id", "at", "user", "username", "remote_addr", "action", "object_type", "object_id",
                  "object_repr", "changes", "tenant"]
        read_only_fields = fields
