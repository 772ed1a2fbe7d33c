"""Admin for contacts, interactions (with their transcript) and messages: read
mostly; ending a session goes through the service."""

from datetime import timedelta

from django.contrib import admin, messages
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from channels_app.admin.scoping import ScopedModelAdmin, ScopedTabularInline
from channels_app.models import (
    Contact,
    ContactOptOut,
    Interaction,
    InteractionState,
    Message,
    MessageDirection,
    MessageStatus,
)
from channels_app.options_catalog import IW
from channels_app.services.interactions import interaction_end
from channels_app.services.options import option_value


class ReadOnlyAdminMixin:
    """Rows written by services only: viewable, not addable or editable here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class InteractionInline(ReadOnlyAdminMixin, ScopedTabularInline):
    model = Interaction
    fields = ["link", "type", "state", "channel", "queue", "created_at"]
    readonly_fields = fields
    extra = 0
    show_change_link = False
    verbose_name_plural = "history (interactions)"

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="interaction")
    def link(self, interaction):
        url = reverse("admin:channels_app_interaction_change", args=[interaction.pk])
        return format_html('<a href="{}">{}</a>', url, interaction.pk)


class OptOutInline(ScopedTabularInline):
    """The channels the contact opted out of (API.md "Opt-out"): InviteToChat and campaigns skip them there."""

    model = ContactOptOut
    fields = ["channel", "source", "created_at"]
    readonly_fields = ["source", "created_at"]
    extra = 0
    verbose_name_plural = "opted out of"


@admin.register(Contact)
class ContactAdmin(ScopedModelAdmin):
    list_display = ["__str__", "phone_number", "client_id", "nickname", "tenant", "updated_at"]
    list_filter = ["tenant"]
    search_fields = ["first_name", "last_name", "nickname", "phone_number", "client_id", "email"]
    readonly_fields = ["tenant", "created_at", "updated_at"]
    inlines = [OptOutInline, InteractionInline]

    def has_add_permission(self, request):
        return False  # contacts are found or created by the conversations themselves


@admin.register(Interaction)
class InteractionAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    list_display = ["id", "type", "subtype", "state", "channel", "client_id", "queue", "created_at", "ended_at"]
    list_filter = ["channel", "type", "state", "queue", "created_at"]
    date_hierarchy = "created_at"
    search_fields = ["id", "client_id", "contact__first_name", "contact__last_name", "contact__nickname"]
    list_select_related = ["channel"]
    actions = ["end_sessions"]
    fieldsets = [
        (None, {"fields": ["id", "type", "subtype", "state", "channel", "contact_link", "client_id", "queue"]}),
        ("Transcript", {"fields": ["transcript"]}),
        ("Session", {"fields": ["created_at", "last_activity_at", "last_customer_message_at", "ended_at",
                                "end_reason", "terminate_after_send", "user_data"]}),
    ]
    readonly_fields = [
        "id", "type", "subtype", "state", "channel", "contact_link", "client_id", "queue", "transcript",
        "created_at", "last_activity_at", "last_customer_message_at", "ended_at", "end_reason",
        "terminate_after_send", "user_data",
    ]

    @admin.display(description="contact")
    def contact_link(self, interaction):
        url = reverse("admin:channels_app_contact_change", args=[interaction.contact_id])
        return format_html('<a href="{}">{}</a>', url, interaction.contact)

    @admin.display(description="transcript")
    def transcript(self, interaction):
        """As the WhatsApp guide describes the message area: customer messages
        left, agent messages right, errors and the session date centered, and
        the origin time in bold when a message arrived late."""
        delay = timedelta(seconds=option_value(
            section=IW, name="whatsappsession.message-delay-timespan", channel=interaction.channel
        ))
        rows = []
        for message in interaction.messages.select_related("delivery"):
            delayed = bool(message.origin_time and message.created_at - message.origin_time > delay)
            rows.append({
                "message": message,
                "side": "customer" if message.direction == MessageDirection.INBOUND else "agent",
                "delayed": delayed,
                "error": message.status == MessageStatus.FAILED,
            })
        # render_to_string escapes every value it inserts
        context = {"interaction": interaction, "rows": rows}
        return mark_safe(render_to_string("admin/channels_app/interaction/transcript.html", context))

    @admin.action(description="End the selected sessions")
    def end_sessions(self, request, queryset):
        ended = 0
        for interaction in queryset.exclude(state=InteractionState.ENDED):
            interaction_end(interaction=interaction, reason=f"ended by {request.user.get_username()} in the admin")
            ended += 1
        self.message_user(request, f"{ended} session(s) ended.", messages.SUCCESS)

    def has_change_permission(self, request, obj=None):
        # The change list needs it for actions; the change form stays read-only (every field is).
        return request.user.has_perm("channels_app.change_interaction")


@admin.register(Message)
class MessageAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    list_display = ["id", "direction", "status", "channel", "interaction", "short_text", "external_id", "created_at"]
    list_filter = ["direction", "status", "channel", "created_at"]
    search_fields = ["id", "external_id", "channel_message_id", "text", "interaction__id"]
    list_select_related = ["channel"]
    readonly_fields = [f.name for f in Message._meta.fields]

    @admin.display(description="text")
    def short_text(self, message):
        return message.text[:60]
