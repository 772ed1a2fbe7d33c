"""Admin for the configuration models. Saving goes through the services."""

import json
from datetime import datetime

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import escape, format_html, format_html_join
from django.utils.text import Truncator

from channels_app import options_catalog
from channels_app.admin.deliveries import circuit_in_words
from channels_app.admin.forms import TextRulesForm, TextRulesModelForm
from channels_app.admin.scoping import ScopedModelAdmin, ScopedTabularInline
from channels_app.choices import Transport
from channels_app.errors import ApplicationError, InvalidFields
from channels_app.models import (
    BusinessAttribute,
    BusinessAttributeValue,
    Channel,
    Endpoint,
    Membership,
    OptionValue,
    Tenant,
    generate_verify_token,
)
from channels_app.models.configuration import CIRCUIT_RULE
from channels_app.outbound import validate_outbound_url
from channels_app.selectors import channel_list
from channels_app.services.channels import (
    INBOUND_ROUTE,
    SECRET_GRACE_HOURS_MAX,
    channel_delete,
    channel_inbound_route,
    channel_rotate_secret,
    channel_rotate_verify_token,
    channel_save,
    channel_send_test,
)
from channels_app.services.lifecycle import (
    MAX_RETENTION_DAYS,
    RETENTION_CLASSES,
    retention_days_clean,
    retention_days_of,
    tenant_retention_set,
)
from channels_app.services.options import option_reset, option_set, options_export_cfg, options_import_cfg
from channels_app.services.templates import templates_sync_request
from channels_app.services.tenants import tenant_create, tenant_delete, tenant_update
from channels_app.validators import validate_queue_key

OPTION_CHOICES = [
    (f"{option.section}/{option.name}", f"[{option.section}] {option.name}") for option in options_catalog.OPTIONS
]


def describe_option(definition) -> str:
    # The admin renders help text as HTML; catalog texts hold "<tenant-id>"-like words.
    return escape(
        f"Default: {definition.default or '(empty)'}. Valid values: {definition.valid_values}. "
        f"Takes effect: {definition.takes_effect}. Read by: {definition.read_by}. {definition.description}"
    )


class MembershipInline(ScopedTabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]
    verbose_name = "member"
    verbose_name_plural = "members (users who see and change what this tenant holds)"


RETENTION_HELP = {
    "conversations": "Ended interactions with their messages, deliveries and files, by when they ended.",
    "deliveries": "Deliveries delivered or failed, with their attempts, by when they were made (the messages stay).",
    "campaigns": "Recipients of campaigns completed or cancelled that long ago (the campaigns' counts stay).",
    "audit": "Audit entries, by when they were written.",
}


def _retention_field(name: str) -> forms.IntegerField:
    return forms.IntegerField(label=f"{name} (days)", required=False, min_value=0, max_value=MAX_RETENTION_DAYS,
                              help_text=f"{RETENTION_HELP[name]} Empty: kept for ever.")


class TenantForm(TextRulesModelForm):
    """The tenant, with its retention: one field per class of data (empty: kept for ever)."""

    retention_conversations = _retention_field("conversations")
    retention_deliveries = _retention_field("deliveries")
    retention_campaigns = _retention_field("campaigns")
    retention_audit = _retention_field("audit")

    class Meta:
        model = Tenant
        exclude = ["retention_days"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, days in retention_days_of(self.instance).items():
            self.fields[f"retention_{name}"].initial = days

    def clean(self):
        cleaned = super().clean()
        try:
            cleaned["retention_days"] = retention_days_clean(
                {name: cleaned.get(f"retention_{name}") for name in RETENTION_CLASSES
                 if f"retention_{name}" not in self.errors})
        except InvalidFields as error:
            for field, messages_ in error.errors.items():
                self.add_error(f"retention_{field.removeprefix('retention_days.')}", messages_)
        return cleaned


@admin.register(Tenant)
class TenantAdmin(ScopedModelAdmin):
    form = TenantForm
    list_display = ["id", "name", "channel_count", "retention", "last_purge_at", "created_at"]
    search_fields = ["name", "=id"]
    inlines = [MembershipInline]
    delete_service = tenant_delete

    def save_model(self, request, obj, form, change):
        if change:
            tenant_update(tenant=obj, name=obj.name)
        else:
            created = tenant_create(tenant_id=obj.id, name=obj.name, created_by=request.user)
            obj.__dict__.update({k: v for k, v in created.__dict__.items() if not k.startswith("_")})
        if "retention_days" in form.cleaned_data:
            tenant_retention_set(tenant=obj, retention_days=form.cleaned_data["retention_days"])

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(channel_total=Count("channels"))

    @admin.display(description="channels", ordering="channel_total")
    def channel_count(self, tenant):
        return tenant.channel_total

    @admin.display(description="retention")
    def retention(self, tenant):
        days = retention_days_of(tenant)
        kept = [f"{name} {value} d" for name, value in days.items() if value is not None]
        return ", ".join(kept) or "everything kept for ever"

    @admin.display(description="last purge")
    def last_purge_at(self, tenant):
        purge = tenant.last_purge or {}
        return _when(purge.get("at")) or "never"

    @admin.display(description="last purge")
    def last_purge_summary(self, tenant):
        purge = tenant.last_purge
        if not purge:
            return "Never: no retention was set, or the daily purge has not run since."
        removed = [(name.replace("_", " "), count) for name, count in purge.get("removed", {}).items() if count]
        if not removed:
            return format_html("{}: nothing was older than the retention.", _when(purge.get("at")))
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", removed)
        return format_html('{} removed:<table class="dms-purge-removed"><tbody>{}</tbody></table>',
                           _when(purge.get("at")), rows)

    def get_readonly_fields(self, request, obj=None):
        return ["id", "last_purge_summary"] if obj else []

    def get_fieldsets(self, request, obj=None):
        identity = ["id", "name"] if obj is not None or request.user.is_superuser else ["name"]
        # (the id is assigned to a tenant a non-superuser creates: trying ids would tell which exist)
        fieldsets = [
            (None, {"fields": identity}),
            ("Retention", {
                "fields": [f"retention_{name}" for name in RETENTION_CLASSES],
                "description": "How long this tenant's data is kept (API.md, \"Data lifecycle\"). Once a day, "
                "and with manage.py purge, what is older is removed, in short batches; an open interaction, a "
                "delivery still due and a campaign not finished are never touched.",
            }),
        ]
        if obj is not None:
            fieldsets.append(("Last purge", {"fields": ["last_purge_summary"]}))
        return fieldsets


def _when(at: str | None) -> str:
    if not at:
        return ""
    moment = timezone.localtime(datetime.fromisoformat(at))
    return f"{moment:%Y-%m-%d %H:%M}"


class EndpointInline(ScopedTabularInline):
    model = Endpoint
    extra = 1
    verbose_name = "endpoint (chat queue key)"
    verbose_name_plural = "endpoints (chat queue keys)"


class OptionValueForm(TextRulesModelForm):
    """Picks a catalog option and validates its value against it."""

    option = forms.ChoiceField(
        choices=OPTION_CHOICES,
        help_text="The option (section and name); its default, valid values and when a change takes effect "
        "are shown under the value once saved, and in the options list.",
        widget=forms.Select(attrs={"style": "max-width: 32em"}),
    )

    class Meta:
        model = OptionValue
        fields = ["option", "value"]
        widgets = {"value": forms.Textarea(attrs={"rows": 2, "cols": 60})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        instance = self.instance
        if instance.pk:
            self.fields["option"].initial = f"{instance.section}/{instance.name}"
            self.fields["option"].disabled = True
            if instance.definition:
                self.fields["value"].help_text = describe_option(instance.definition)

    def clean(self):
        cleaned = super().clean()
        option = cleaned.get("option") or f"{self.instance.section}/{self.instance.name}"
        self.instance.section, self.instance.name = option.split("/", 1)
        return cleaned


def copy_button(value: str, label: str = "Copy"):
    """A button that copies `value` to the clipboard (channels_app/static/channels_app/admin.js)."""
    return format_html('<button type="button" class="button dms-copy" data-copy="{}">{}</button>', value, label)


class ChannelOptionForm(OptionValueForm):
    """An override of a channel option, but not of inbound-route-by-call: that is the channel's "Routing" field."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        route = "/".join(INBOUND_ROUTE)
        self.fields["option"].choices = [c for c in self.fields["option"].choices if c[0] != route]


class ChannelOptionInline(ScopedTabularInline):
    model = OptionValue
    form = ChannelOptionForm
    extra = 0
    verbose_name = "option override"
    verbose_name_plural = "option overrides for this channel (its routing queue is set above, under Routing)"

    def get_queryset(self, request):
        section, name = INBOUND_ROUTE
        return super().get_queryset(request).exclude(section=section, name=name)


class ChannelForm(TextRulesModelForm):
    webhook_url = forms.URLField(
        label="webhook URL",
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text=Channel._meta.get_field("webhook_url").help_text,
    )
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave blank to keep the current secret (a new channel gets a generated one).",
    )
    inbound_route_by_call = forms.CharField(
        required=False,
        label="inbound-route-by-call",
        help_text="The chat queue key (tenant id:endpoint name, e.g. 1:session-chat) where interactions of this "
        "channel are placed.",
    )

    access_token = forms.CharField(
        required=False, max_length=1024,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="WhatsApp Cloud API: a permanent access token. Write-only: leave blank to keep the current one.",
    )
    app_secret = forms.CharField(
        required=False, max_length=256,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="WhatsApp Cloud API: the Meta app's secret. Write-only: leave blank to keep the current one.",
    )

    verify_token = forms.CharField(
        required=False, max_length=256,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="WhatsApp Cloud API: what Meta's webhook form asks as 'Verify token'. Write-only: leave blank to "
        "keep the current one (a new channel gets a generated one, shown once; rotate it from the channel's page).",
    )

    throughput_per_second = forms.IntegerField(
        required=False, min_value=1, max_value=1000, label="throughput (messages per second)",
        help_text=Channel._meta.get_field("throughput_per_second").help_text + " Blank: 80.",
    )

    class Meta:
        model = Channel
        fields = [
            "channel_id", "name", "tenant", "media_type", "transport", "business_id", "webhook_url", "secret",
            "retry_timeout_seconds", "retry_attempts", "enabled", "phone_number_id", "waba_id", "access_token",
            "app_secret", "verify_token", "throughput_per_second",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["inbound_route_by_call"].initial = channel_inbound_route(channel=self.instance)
        self._current_secret = self.instance.secret
        self._current_cloud = {"access_token": self.instance.access_token, "app_secret": self.instance.app_secret,
                               "verify_token": self.instance.verify_token}
        self.verify_token_generated = False

    def clean_secret(self):
        return self.cleaned_data["secret"] or self._current_secret

    def clean_throughput_per_second(self):
        return self.cleaned_data["throughput_per_second"] or self.instance.throughput_per_second or 80

    def clean_access_token(self):
        return self.cleaned_data["access_token"] or self._current_cloud["access_token"]

    def clean_app_secret(self):
        return self.cleaned_data["app_secret"] or self._current_cloud["app_secret"]

    def clean_verify_token(self):
        return self.cleaned_data["verify_token"] or self._current_cloud["verify_token"]

    def clean_webhook_url(self):
        value = self.cleaned_data["webhook_url"]
        validate_outbound_url(value)  # shown on the field; channel_save checks it again for every door
        return value

    def _update_errors(self, errors):
        # A field the form refused (a blocked webhook address) is missing from the instance, so the model's
        # clean() would add "needs a webhook URL" under the refusal: one error a field, the form's.
        if hasattr(errors, "error_dict"):
            kept = {field: items for field, items in errors.error_dict.items() if field not in self._errors}
            if not kept:
                return
            errors = forms.ValidationError(kept)
        super()._update_errors(errors)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("transport") == Transport.WHATSAPP_CLOUD and not cleaned.get("verify_token"):
            # Generated here rather than in channel_save, as the model checks that a Cloud channel has one.
            cleaned["verify_token"] = generate_verify_token()
            self.verify_token_generated = True
        route = (cleaned.get("inbound_route_by_call") or "").strip()
        cleaned["inbound_route_by_call"] = route
        tenant = cleaned.get("tenant")
        if route and tenant is not None:
            try:
                validate_queue_key(route, tenant_id=tenant.pk)
            except forms.ValidationError as error:
                self.add_error("inbound_route_by_call", error)
        return cleaned


class RotateSecretForm(forms.Form):
    grace_hours = forms.IntegerField(
        min_value=0, max_value=SECRET_GRACE_HOURS_MAX, initial=0, label="Keep the old secret valid for (hours)",
        help_text=f"0: the old secret stops working now. 1 to {SECRET_GRACE_HOURS_MAX}: requests the third party "
        "signs with either secret are accepted meanwhile, while it changes to the new one (our webhooks are signed "
        "with the new one at once).",
        widget=forms.NumberInput(attrs={"style": "width: 5em"}),
    )


@admin.register(Channel)
class ChannelAdmin(ScopedModelAdmin):
    form = ChannelForm
    list_display = ["channel_id", "name", "tenant", "media_type", "transport", "business_id", "secret_set", "enabled",
                    "circuit", "needs_attention"]
    list_filter = ["media_type", "transport", "enabled", "tenant"]

    def lookup_allowed(self, lookup, value, request=None):
        # The dashboard's "Channels down" and "Channels needing attention" tiles link here with these.
        return lookup in ("down_since__isnull", "needs_attention__gt") or super().lookup_allowed(
            lookup, value, request)
    search_fields = ["channel_id", "name", "business_id", "webhook_url"]
    inlines = [EndpointInline, ChannelOptionInline]
    fieldsets = [
        (None, {"fields": ["channel_id", "name", "tenant", "media_type", "business_id", "enabled"]}),
        ("Delivery", {"fields": ["transport", "webhook_url", "secret", "retry_timeout_seconds", "retry_attempts"]}),
        ("Circuit", {"fields": ["circuit", "consecutive_failures", "down_since"], "description": CIRCUIT_RULE}),
        ("Routing", {"fields": ["inbound_route_by_call"]}),
        ("WhatsApp Cloud API", {"classes": ["collapse"], "fields": [
            "phone_number_id", "waba_id", "access_token", "app_secret", "verify_token", "throughput_per_second",
            "needs_attention"]}),
    ]
    readonly_fields = ["circuit", "consecutive_failures", "down_since", "needs_attention"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = []
        for name, options in super().get_fieldsets(request, obj):
            options = dict(options)
            if obj is None:  # a new channel has no circuit nor anything needing attention yet
                if name == "Circuit":
                    continue
                options["fields"] = [field for field in options["fields"] if field != "needs_attention"]
            if name == "WhatsApp Cloud API" and obj is not None and obj.transport == Transport.WHATSAPP_CLOUD:
                options["classes"] = []  # open on the page of the channel whose transport it is
            fieldsets.append((name, options))
        return fieldsets

    @admin.display(description="circuit")
    def circuit(self, channel):
        return circuit_in_words(channel)

    actions = ["rotate_secrets", "send_test_message", "sync_templates"]
    delete_service = channel_delete
    change_form_template = "admin/channels_app/channel/change_form.html"

    @admin.display(boolean=True, description="secret")
    def secret_set(self, channel):
        return bool(channel.secret)

    def save_model(self, request, obj, form, change):
        generated = not obj.secret
        channel_save(channel=obj, inbound_route_by_call=form.cleaned_data["inbound_route_by_call"])
        if obj.transport == Transport.WHATSAPP_CLOUD:
            # Meta is given the webhook URL and the verify token; the channel secret signs nothing it sees.
            if form.verify_token_generated:
                self._show_verify_token_once(request, obj, obj.verify_token)
        elif generated:
            self._show_secret_once(request, obj, obj.secret)

    @admin.action(description="Rotate the secret of the selected channels (asks first, shown once)",
                  permissions=["change"])
    def rotate_secrets(self, request, queryset):
        form = RotateSecretForm(request.POST if "confirm" in request.POST else None)
        if form.is_bound and form.is_valid():
            for channel in queryset:
                self._rotate_secret(request, channel, form.cleaned_data["grace_hours"])
            return None
        return self._rotate_page(request, form, list(queryset), what="secret")

    def get_urls(self):
        return [
            path("<path:object_id>/rotate-secret/",
                 self.guarded(self.rotate_secret_view, "admin:channels_app_channel_rotate_secret"),
                 name="channels_app_channel_rotate_secret"),
            path("<path:object_id>/rotate-verify-token/",
                 self.guarded(self.rotate_verify_token_view, "admin:channels_app_channel_rotate_verify_token"),
                 name="channels_app_channel_rotate_verify_token"),
            *super().get_urls(),
        ]

    def _changeable(self, request, object_id) -> Channel:
        channel = self.get_object(request, unquote(object_id))  # the caller's tenants only
        if channel is None:
            raise Http404("No such channel.")
        if not self.has_change_permission(request, channel):
            raise PermissionDenied
        return channel

    def rotate_secret_view(self, request, object_id):
        """Asks first (with the grace period), then rotates and shows the new secret once."""
        channel = self._changeable(request, object_id)
        form = RotateSecretForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            self._rotate_secret(request, channel, form.cleaned_data["grace_hours"])
            return redirect("admin:channels_app_channel_change", channel.pk)
        return self._rotate_page(request, form, [channel], what="secret")

    def rotate_verify_token_view(self, request, object_id):
        """WhatsApp Cloud API: asks first, then rotates the verify token and shows the new one once."""
        channel = self._changeable(request, object_id)
        if channel.transport != Transport.WHATSAPP_CLOUD:
            self.message_user(request, "Only a WhatsApp Cloud API channel has a verify token.", messages.ERROR)
            return redirect("admin:channels_app_channel_change", channel.pk)
        if request.method == "POST":
            self._show_verify_token_once(request, channel, channel_rotate_verify_token(channel=channel))
            return redirect("admin:channels_app_channel_change", channel.pk)
        return self._rotate_page(request, None, [channel], what="verify token")

    def _rotate_page(self, request, form, channels, *, what: str):
        one = len(channels) == 1
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Rotate the {what} of {channels[0].channel_id if one else f'{len(channels)} channels'}?",
            "form": form,
            "what": what,
            "channels": channels,
            "from_action": request.POST.get("action") == "rotate_secrets",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "back_url": reverse("admin:channels_app_channel_change", args=[channels[0].pk]) if one and not
            request.POST.get("action") else reverse("admin:channels_app_channel_changelist"),
        }
        return TemplateResponse(request, "admin/channels_app/channel/rotate.html", context)

    def _rotate_secret(self, request, channel, grace_hours: int) -> None:
        secret = channel_rotate_secret(channel=channel, grace_hours=grace_hours)
        self._show_secret_once(request, channel, secret)
        if channel.previous_secret_until is not None:
            self.message_user(request, format_html(
                "The old secret of <b>{}</b> is still accepted until {} UTC.", channel.channel_id,
                channel.previous_secret_until.strftime("%Y-%m-%d %H:%M")), messages.INFO)

    @admin.action(description="Send a test message through the selected channels", permissions=["change"])
    def send_test_message(self, request, queryset):
        for channel in queryset:
            result = channel_send_test(channel=channel)
            status = f"HTTP {result.status_code}" if result.status_code else "no HTTP answer"
            answer = Truncator(result.response_excerpt or result.error or "(empty)").chars(300)
            self.message_user(
                request,
                format_html(
                    'Test message through <b>{}</b> ({}): <b>{}</b>, {} in {} ms. Answer: <code>{}</code>',
                    channel.channel_id, channel.get_transport_display(), result.outcome, status,
                    round(result.latency_ms), answer,
                ),
                messages.SUCCESS if result.outcome == "accepted" else messages.ERROR,
            )

    @admin.action(description="Sync WhatsApp templates from Meta now (Cloud API channels)", permissions=["change"])
    def sync_templates(self, request, queryset):
        synced = []
        for channel in queryset.filter(transport="whatsapp_cloud").exclude(waba_id=""):
            templates_sync_request(channel=channel)
            synced.append(channel.channel_id)
        self.message_user(request, f"Template sync queued for: {', '.join(synced) or 'no Cloud API channel'}.")

    def _show_secret_once(self, request, channel, secret):
        # A message is shown on the next page and then gone: the only time anyone sees the secret.
        self.message_user(
            request,
            format_html(
                '<span class="dms-secret">The secret of <b>{}</b> is <code class="dms-secret-value">{}</code> {} '
                "Copy it now and give it to the third party (it signs our webhooks and their requests): "
                "it is not shown again.</span>",
                channel.channel_id, secret, copy_button(secret, "Copy secret"),
            ),
            messages.WARNING,
        )

    def _show_verify_token_once(self, request, channel, token):
        self.message_user(
            request,
            format_html(
                '<span class="dms-secret">The verify token of <b>{}</b> is <code class="dms-secret-value">{}</code> '
                "{} Copy it now and enter it as <i>Verify token</i> in Meta's webhook configuration, with the "
                "callback URL shown on the channel's page: it is not shown again.</span>",
                channel.channel_id, token, copy_button(token, "Copy verify token"),
            ),
            messages.WARNING,
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            # The "Connect the third party" panel shows what the channel's transport needs.
            if obj.transport == Transport.WHATSAPP_CLOUD:
                context["cloud_webhook_url"] = public_url(request, reverse("whatsapp-webhook", args=[obj.channel_id]))
                context["copy_cloud_webhook"] = copy_button(context["cloud_webhook_url"], "Copy URL")
                context["cloud_webhook_https"] = context["cloud_webhook_url"].startswith("https://")
                context["rotate_verify_token_url"] = reverse("admin:channels_app_channel_rotate_verify_token",
                                                             args=[obj.pk])
            else:
                context["inbound_url"] = public_url(request, reverse("nexus-messages", args=[obj.channel_id]))
                context["copy_inbound"] = copy_button(context["inbound_url"], "Copy URL")
                context["rotate_secret_url"] = reverse("admin:channels_app_channel_rotate_secret", args=[obj.pk])
                if len(obj.inbound_secrets(timezone.now())) > 1:
                    context["previous_secret_until"] = obj.previous_secret_until
        return super().render_change_form(request, context, add, change, form_url, obj)


def public_url(request, path: str) -> str:
    """The absolute URL of one of our paths as the third party reaches it (PUBLIC_BASE_URL, else the request's
    host): the /nexus inbound URL (API.md, Third-Party Messaging) or Meta's webhook URL."""
    base = settings.PUBLIC_BASE_URL
    return f"{base}{path}" if base else request.build_absolute_uri(path)


class OptionScopeFilter(admin.SimpleListFilter):
    title = "scope"
    parameter_name = "scope"

    def lookups(self, request, model_admin):
        return [("global", "Global values"), ("channel", "Channel overrides")]

    def queryset(self, request, queryset):
        if self.value() == "global":
            return queryset.filter(channel__isnull=True)
        if self.value() == "channel":
            return queryset.filter(channel__isnull=False)
        return queryset


class OptionImportForm(TextRulesForm):
    file = forms.FileField(help_text="A .cfg (INI) option file, e.g. GenesysHubDriver.cfg.")
    channel = forms.ModelChoiceField(
        Channel.objects.none(),
        required=False,
        to_field_name="channel_id",
        label="Channel of the [channel-…] sections",
        help_text=escape(
            "The [channel-<id>] sections of the file (and their endpoints line) set this channel's overrides; "
            "the other sections are global values. Empty: a [channel-<id>] section goes to the channel of that id; "
            "a section whose channel does not exist is refused (never made global)."
        ),
    )
    dry_run = forms.BooleanField(
        required=False, label="Dry run",
        help_text="Check the file and show what would be written, without writing; then Apply writes it.",
    )


class OptionValueAdminForm(OptionValueForm):
    class Meta(OptionValueForm.Meta):
        fields = ["option", "channel", "value"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:  # the option is fixed: its definition is the value's help text, once
            self.fields["option"].help_text = ""
            return
        # Shown under the value as soon as an option is chosen (optionvalue/change_form.html).
        self.fields["option"].widget.attrs["data-definitions"] = json.dumps({
            f"{o.section}/{o.name}": describe_option(o) for o in options_catalog.OPTIONS
        })
        self.fields["option"].help_text = "The option (section and name); its default, valid values and when a " \
            "change takes effect appear under the value as you choose it."

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is None and "option" in cleaned:
            section, name = cleaned["option"].split("/", 1)
            channel = cleaned.get("channel")
            existing = OptionValue.objects.filter(section=section, name=name, channel=channel).first()
            if existing is not None:
                where = f"channel {channel.channel_id}" if channel else "global"
                self.add_error("option", format_html(
                    'This option already has a {} value ({}): <a href="{}">change it there</a>.', where,
                    Truncator(existing.value).chars(40) or "empty",
                    reverse("admin:channels_app_optionvalue_change", args=[existing.pk]),
                ))
        return cleaned


@admin.register(OptionValue)
class OptionValueAdmin(ScopedModelAdmin):
    form = OptionValueAdminForm
    # Six columns that fit 1280 px beside the filters: the default is under the value, "read by" under what the
    # option does; the option's page has all of its definition.
    list_display = ["name", "section", "scope", "short_value", "valid_values", "description"]
    list_filter = ["section", OptionScopeFilter, "channel"]
    ordering = ["section", "name", "channel__channel_id"]
    list_per_page = 200
    change_form_template = "admin/channels_app/optionvalue/change_form.html"
    search_fields = ["name", "value"]
    list_select_related = ["channel"]
    actions = ["reset_to_default"]
    change_list_template = "admin/channels_app/optionvalue/change_list.html"

    @admin.display(description="scope", ordering="channel__channel_id")
    def scope(self, row):
        return row.channel.channel_id if row.channel else "global"

    @admin.display(description="value (default)", ordering="value")
    def short_value(self, row):
        value = Truncator(row.value).chars(40)
        if row.definition is None:
            return value
        if row.value == row.definition.default:
            return format_html('{} <span class="dms-quiet">(the default)</span>', value or "(empty)")
        return format_html('{}<div class="dms-quiet">default: {}</div>', value or "(empty)",
                           Truncator(row.definition.default).chars(40) or "(empty)")

    @admin.display(description="valid values")
    def valid_values(self, row):
        return Truncator(row.definition.valid_values).chars(48) if row.definition else ""

    @admin.display(description="what it does")
    def description(self, row):
        if row.definition is None:
            return ""
        return format_html('{}<div class="dms-quiet">read by the {}</div>',
                           Truncator(row.definition.description).chars(110), row.definition.read_by)

    def get_readonly_fields(self, request, obj=None):
        return ["channel"] if obj else []

    def has_delete_permission(self, request, obj=None):
        # A global value is reset, not deleted; a channel override can be deleted.
        return super().has_delete_permission(request, obj) and (obj is None or obj.channel_id is not None)

    def save_model(self, request, obj, form, change):
        saved = option_set(section=obj.section, name=obj.name, value=obj.value, channel=obj.channel)
        obj.pk = saved.pk

    @admin.action(description="Reset selected options to their default (remove channel overrides)",
                  permissions=["change"])
    def reset_to_default(self, request, queryset):
        for row in queryset:
            option_reset(section=row.section, name=row.name, channel=row.channel)
        self.message_user(request, f"{queryset.count()} option(s) reset.", messages.SUCCESS)

    def get_urls(self):
        return [
            path("import/", self.guarded(self.import_view, "admin:channels_app_optionvalue_import"),
                 name="channels_app_optionvalue_import"),
            path("export/", self.guarded(self.export_view, "admin:channels_app_optionvalue_export"),
                 name="channels_app_optionvalue_export"),
            *super().get_urls(),
        ]

    # A dry run's file is kept in the page (signed, with the channel chosen and the user) for *Apply*: the
    # administrator applies what was checked without choosing the file again, and nothing else.
    IMPORT_KEPT_SALT = "channels_app.optionvalue.import"
    IMPORT_KEPT_SECONDS = 3600

    def import_view(self, request):
        report, kept, kept_error, file_name, applied_channel = None, None, "", "", None
        channels = channel_list(user=request.user)
        form = OptionImportForm(None if "kept" in request.POST else request.POST or None, request.FILES or None)
        form.fields["channel"].queryset = channels
        try:
            if "kept" in request.POST:
                file_name, text, applied_channel = self._import_kept(request, channels)
                report = options_import_cfg(text=text, channel_sections=applied_channel, channels=channels)
            elif request.method == "POST" and form.is_valid():
                upload, applied_channel = form.cleaned_data["file"], form.cleaned_data["channel"]
                file_name, text = upload.name, upload.read().decode("utf-8-sig")
                report = options_import_cfg(
                    text=text, channel_sections=applied_channel, channels=channels,
                    dry_run=form.cleaned_data["dry_run"],
                )
                if report.dry_run:
                    kept = signing.dumps(
                        {"file": file_name, "text": text, "user": request.user.pk,
                         "channel": applied_channel.channel_id if applied_channel else None},
                        salt=self.IMPORT_KEPT_SALT, compress=True,
                    )
        except UnicodeDecodeError:
            form.add_error("file", "The file is not UTF-8 text.")
        except signing.BadSignature:  # also SignatureExpired
            kept_error = "The checked file is no longer here (it expires after an hour): choose the file again."
        except ApplicationError as error:
            if form.is_bound:
                form.add_error("file", error.message)
            else:
                kept_error = error.message
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import options from a .cfg file",
            "form": form,
            "report": report,
            "kept": kept,
            "kept_error": kept_error,
            "file_name": file_name,
            "applied_channel": applied_channel,
            "changelist_url": reverse("admin:channels_app_optionvalue_changelist"),
        }
        return TemplateResponse(request, "admin/channels_app/optionvalue/import.html", context)

    def _import_kept(self, request, channels):
        """The file of a dry run, as it was checked (BadSignature when it was altered, expired, or another
        user's, or its channel is no longer one of the user's)."""
        kept = signing.loads(request.POST["kept"], salt=self.IMPORT_KEPT_SALT, max_age=self.IMPORT_KEPT_SECONDS)
        if kept.get("user") != request.user.pk:
            raise signing.BadSignature("kept for another user")
        channel = None
        if kept.get("channel"):
            channel = channels.filter(channel_id=kept["channel"]).first()
            if channel is None:
                raise signing.BadSignature("the channel is gone")
        return kept["file"], kept["text"], channel

    def export_view(self, request):
        channel_id = request.GET.get("channel")
        channel = channel_list(user=request.user).filter(channel_id=channel_id).first() if channel_id else None
        if channel_id and channel is None:
            return render(request, "admin/channels_app/optionvalue/import.html", status=404, context={
                **self.admin_site.each_context(request), "title": f"Unknown channel {channel_id}",
                "opts": self.model._meta, "form": None, "report": None,
            })
        response = HttpResponse(options_export_cfg(channel=channel), content_type="text/plain; charset=utf-8")
        filename = f"options-{channel.channel_id}.cfg" if channel else "options.cfg"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


class BusinessAttributeValueInline(ScopedTabularInline):
    model = BusinessAttributeValue
    extra = 1
    fields = ["name", "display_name", "description", "annex", "is_default", "order"]


@admin.register(BusinessAttribute)
class BusinessAttributeAdmin(ScopedModelAdmin):
    list_display = ["name", "display_name", "type", "value_count"]
    list_filter = ["type"]
    search_fields = ["name", "display_name", "values__name", "values__display_name"]
    inlines = [BusinessAttributeValueInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(value_total=Count("values"))

    @admin.display(description="values", ordering="value_total")
    def value_count(self, attribute):
        return attribute.value_total


@admin.register(BusinessAttributeValue)
class BusinessAttributeValueAdmin(ScopedModelAdmin):
    list_display = ["name", "display_name", "attribute", "is_default", "order"]
    list_filter = ["attribute", "attribute__type", "is_default"]
    search_fields = ["name", "display_name", "description"]
    list_select_related = ["attribute"]
