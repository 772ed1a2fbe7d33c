"""Configuration that administrators manage: tenants, channels, endpoints,
option values and business attributes."""

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from channels_app import options_catalog
from channels_app.choices import (
    USE_ESP_PERMISSION,
    WHATSAPP_ROLE_PERMISSIONS,
    BusinessAttributeType,
    MediaType,
    Transport,
)
from channels_app.phones import parse_international, to_e164
from channels_app.validators import (
    validate_channel_id,
    validate_http_url,
    validate_queue_key,
    validate_queue_key_format,
    validate_time_zone,
)

# What opens and closes a channel's circuit (services.deliveries records it), in one wording: the help text of
# Channel.down_since, the admin's channel page, ESP 901 and the README ("Channel circuit") say it in these words.
CIRCUIT_FAILURE = (
    "could not get through to the channel's third party: no answer (host name not found, connection refused, "
    "timed out), an answer 500 or above, or the WhatsApp Cloud API's throttling"
)
CIRCUIT_RULE = (
    f"A channel is down once CIRCUIT_FAILURE_THRESHOLD deliveries in a row {CIRCUIT_FAILURE}: InviteToChat "
    "answers 901 and campaigns wait. The next delivery that gets any other answer brings it up again."
)


class Tenant(models.Model):
    """A tenant of the contact center: the `<tenant-id>` of a chat queue key."""

    id = models.PositiveIntegerField(
        primary_key=True, help_text="The numeric tenant id used in chat queue keys such as 1:session-chat."
    )
    name = models.CharField(max_length=200, unique=True)
    retention_days = models.JSONField(
        default=dict, blank=True,
        help_text="Days each class of data is kept (conversations, deliveries, campaigns, audit); "
        "a class left out or null is kept for ever.",
    )
    last_purge = models.JSONField(
        null=True, blank=True, editable=False,
        help_text='The last purge of this tenant: {"at": ..., "removed": {"interactions": n, ...}}.',
    )
    timezone = models.CharField(
        max_length=64, default="UTC", validators=[validate_time_zone],
        help_text="IANA time zone name, e.g. Europe/Amsterdam: a campaign's send window uses it for a recipient "
        "whose zone neither its contact nor its phone number tells.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.id}: {self.name}"


class Membership(models.Model):
    """A user's membership of a tenant. A user sees and changes only what the
    tenants they are members of hold (superusers: every tenant)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant", "user"]
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique")]

    def __str__(self):
        return f"{self.user} in tenant {self.tenant_id}"


def generate_channel_secret() -> str:
    return secrets.token_hex(32)


def generate_verify_token() -> str:
    """A WhatsApp Cloud API verify token: typed into Meta's form, so letters and digits only."""
    return secrets.token_hex(20)


class Channel(models.Model):
    """A messaging channel of the DMS: a WhatsApp, Apple Messages for Business,
    SMS or e-mail channel, reached through a third-party webhook or the
    built-in hub simulator."""

    channel_id = models.CharField(
        "channel id",
        max_length=100,
        unique=True,
        validators=[validate_channel_id],
        help_text="The DMS channel name (_umsChannel), e.g. channel-whatsapp-REAL, or the third-party "
        "channel id, e.g. 0123456789 or company.com.",
    )
    name = models.CharField(max_length=200, help_text="A display name for administrators.")
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="channels")
    media_type = models.CharField(max_length=16, choices=MediaType.choices)
    transport = models.CharField(
        max_length=16,
        choices=Transport.choices,
        default=Transport.WEBHOOK,
        help_text="webhook: agent messages are POSTed, signed, to the webhook URL; simulator: the built-in hub.",
    )
    business_id = models.CharField(
        "business id",
        max_length=200,
        help_text="The business phone number (WhatsApp, SMS), Apple business id, or e-mail address of the "
        "channel (_umsBusinessId).",
    )
    webhook_url = models.URLField(
        "webhook URL",
        max_length=500,
        blank=True,
        validators=[validate_http_url],
        help_text="Where agent messages are POSTed. Required for the webhook transport.",
    )
    secret = models.CharField(
        max_length=128,
        blank=True,
        help_text="The app secret that signs webhooks and inbound requests (HMAC). Generated when left blank.",
    )
    # A rotation with a grace period keeps the replaced secret here: inbound requests signed with it are
    # still accepted until previous_secret_until (channel_rotate_secret, Channel.inbound_secrets).
    previous_secret = models.CharField(max_length=128, blank=True, editable=False)
    previous_secret_until = models.DateTimeField(
        "previous secret valid until", null=True, blank=True, editable=False,
        help_text="Until then, inbound requests signed with the secret replaced by the last rotation are accepted.",
    )
    retry_timeout_seconds = models.PositiveIntegerField(
        "retry timeout (seconds)",
        default=600,
        validators=[MinValueValidator(1), MaxValueValidator(7 * 24 * 3600)],
        help_text="How long a webhook that failed with 5xx, a timeout or a connection error is redelivered.",
    )
    retry_attempts = models.PositiveIntegerField(
        default=5,
        validators=[MaxValueValidator(50)],
        help_text="How many times a failed webhook is redelivered within the retry timeout (0: never).",
    )
    enabled = models.BooleanField(default=True)
    # The circuit (services.deliveries): written by delivery outcomes only, never by a form.
    consecutive_failures = models.PositiveIntegerField(
        default=0, editable=False,
        help_text="Deliveries in a row that could not get through (see down since).",
    )
    down_since = models.DateTimeField(
        null=True, blank=True, editable=False, help_text=f"When the channel went down. {CIRCUIT_RULE}",
    )
    # --- WhatsApp Cloud API (transport `whatsapp_cloud`; API.md "WhatsApp Cloud API channels") ---
    phone_number_id = models.CharField(
        "phone number id", max_length=64, blank=True,
        help_text="WhatsApp Cloud API: the business phone number's id (WhatsApp Manager, API Setup).",
    )
    waba_id = models.CharField(
        "WhatsApp Business Account id", max_length=64, blank=True,
        help_text="WhatsApp Cloud API: the WABA id, where message templates are created.",
    )
    access_token = models.CharField(
        max_length=1024, blank=True,
        help_text="WhatsApp Cloud API: a permanent (system user) access token. Write-only: never shown again.",
    )
    app_secret = models.CharField(
        max_length=256, blank=True,
        help_text="WhatsApp Cloud API: the Meta app's secret that signs its webhooks (X-Hub-Signature-256). "
        "Write-only.",
    )
    verify_token = models.CharField(
        max_length=256, blank=True,
        help_text="WhatsApp Cloud API: the text you type as 'Verify token' when you register the webhook URL. "
        "Generated when left blank and shown once.",
    )
    throughput_per_second = models.PositiveIntegerField(
        "throughput (messages per second)", default=80,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="WhatsApp Cloud API: messages per second for this number, for all workers together "
        "(Meta: 80 by default, up to 1,000 once upgraded).",
    )
    needs_attention = models.CharField(
        max_length=500, blank=True,
        help_text="Why the channel cannot send (e.g. Meta refused the access token); empty when it is fine. "
        "Cleared when the access token is changed.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["channel_id"]
        permissions = (*WHATSAPP_ROLE_PERMISSIONS, USE_ESP_PERMISSION)

    def __str__(self):
        return self.channel_id

    def clean(self):
        errors = {}
        if self.transport == Transport.WEBHOOK and not self.webhook_url:
            errors["webhook_url"] = "A webhook channel needs a webhook URL."
        if self.transport == Transport.WHATSAPP_CLOUD:
            if self.media_type != MediaType.WHATSAPP:
                errors["media_type"] = "A WhatsApp Cloud API channel is a whatsapp channel."
            for name in ("phone_number_id", "access_token", "app_secret", "verify_token"):
                if not getattr(self, name):
                    errors[name] = "A WhatsApp Cloud API channel needs it."
        business_error = self._business_id_error()
        if business_error:
            errors["business_id"] = business_error
        if errors:
            raise ValidationError(errors)

    def _business_id_error(self) -> str | None:
        value = (self.business_id or "").strip()
        if not value:
            return None  # "required" is reported by the field itself
        if self.media_type == MediaType.WHATSAPP:
            number = parse_international(value)
            if number is None:
                return f"{value!r} is not a valid business phone number (country code first, e.g. 19251112222)."
            self.business_id = to_e164(number).lstrip("+")
        elif self.media_type == MediaType.SMS:
            number = parse_international(value)
            if number is not None:
                self.business_id = to_e164(number).lstrip("+")
            elif not value.isdigit() or not 3 <= len(value) <= 15:
                return f"{value!r} is neither a valid phone number nor a short or long code of 3 to 15 digits."
        elif self.media_type == MediaType.EMAIL:
            from django.core.validators import validate_email

            try:
                validate_email(value)
            except ValidationError:
                return f"{value!r} is not a valid e-mail address."
        return None

    def ensure_secret(self) -> None:
        if not self.secret:
            self.secret = generate_channel_secret()
        if self.transport == Transport.WHATSAPP_CLOUD and not self.verify_token:
            self.verify_token = generate_verify_token()

    def inbound_secrets(self, now) -> list[str]:
        """The secrets an inbound request may be signed with at `now`: the secret, and during the grace
        period of the last rotation the one it replaced."""
        if self.previous_secret and self.previous_secret_until is not None and now < self.previous_secret_until:
            return [self.secret, self.previous_secret]
        return [self.secret]


class Endpoint(models.Model):
    """A named chat queue key of a channel (an endpoint of its `[channel-*]` section)."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="endpoints")
    queue_key = models.CharField(
        "chat queue key",
        max_length=200,
        validators=[validate_queue_key_format],
        help_text="tenant-id:endpoint-name (a Chat Server endpoint), e.g. 1:session-chat.",
    )

    class Meta:
        ordering = ["queue_key"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "queue_key"], name="endpoint_unique_per_channel"),
        ]

    def __str__(self):
        return self.queue_key

    def clean(self):
        if self.channel_id and self.queue_key:
            try:
                validate_queue_key(self.queue_key, tenant_id=self.channel.tenant_id)
            except ValidationError as error:
                raise ValidationError({"queue_key": error.messages}) from error


class OptionValue(models.Model):
    """The value of a catalog option, global (no channel) or overriding it for one channel."""

    section = models.CharField(max_length=64, choices=[(s, s) for s in options_catalog.SECTIONS])
    name = models.CharField(max_length=128)
    channel = models.ForeignKey(
        Channel,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="option_values",
        help_text="Empty: the global value. Set: this channel's override.",
    )
    value = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["section", "name", "channel__channel_id"]
        verbose_name = _("option")
        constraints = [
            models.UniqueConstraint(
                fields=["section", "name"], condition=Q(channel__isnull=True), name="option_unique_global"
            ),
            models.UniqueConstraint(
                fields=["section", "name", "channel"],
                condition=Q(channel__isnull=False),
                name="option_unique_per_channel",
            ),
        ]

    def __str__(self):
        scope = self.channel.channel_id if self.channel_id else "global"
        return f"[{self.section}] {self.name} ({scope})"

    @property
    def definition(self) -> options_catalog.OptionDefinition | None:
        return options_catalog.get_option(self.section, self.name)

    def clean(self):
        definition = self.definition
        if definition is None:
            raise ValidationError({"name": f"{self.name!r} is not an option of section {self.section!r}."})
        try:
            self.value = options_catalog.validate_option_value(definition, self.value)
        except options_catalog.InvalidOptionValue as error:
            raise ValidationError({"value": str(error)}) from error
        if definition.type == options_catalog.OptionType.QUEUE_KEY and self.value:
            try:
                # A channel's override is of the channel's tenant; a global value names an existing tenant.
                validate_queue_key(self.value, tenant_id=self.channel.tenant_id if self.channel_id else None)
            except ValidationError as error:
                raise ValidationError({"value": error.messages}) from error


class BusinessAttribute(models.Model):
    """A business attribute (Interaction Subtype, Contact Attributes, Disposition Code, Emojis, ...)."""

    name = models.CharField(max_length=128, unique=True)
    display_name = models.CharField(max_length=200, blank=True)
    type = models.CharField(max_length=32, choices=BusinessAttributeType.choices, default=BusinessAttributeType.CUSTOM)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.display_name or self.name


class BusinessAttributeValue(models.Model):
    """A value of a business attribute, with its annex (sections of key/value options)."""

    attribute = models.ForeignKey(BusinessAttribute, on_delete=models.CASCADE, related_name="values")
    name = models.CharField(max_length=128)
    display_name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    annex = models.JSONField(
        default=dict,
        blank=True,
        help_text='Annex sections, e.g. {"settings": {"is-searchable": "false", "is-sortable": "false"}}.',
    )
    is_default = models.BooleanField(default=False)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["attribute__name", "order", "name"]
        constraints = [
            models.UniqueConstraint(fields=["attribute", "name"], name="business_attribute_value_unique"),
        ]

    def __str__(self):
        return self.display_name or self.name

    def clean(self):
        if not isinstance(self.annex, dict) or not all(
            isinstance(section, dict) and all(isinstance(v, str) for v in section.values())
            for section in self.annex.values()
        ):
            raise ValidationError(
                {"annex": 'The annex is an object of sections, each an object of text options: '
                 '{"settings": {"is-searchable": "false"}}.'}
            )
