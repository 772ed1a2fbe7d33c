"""Admin for contacts, interactions (with their transcript) and messages: read
mostly; ending a session goes through the service."""

from datetime import timedelta

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Left
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from channels_app import rights
from channels_app.admin.reports import REPORT_MESSAGE_LOOKUPS, ReplyFilter
from channels_app.admin.scoping import ScopedModelAdmin, ScopedTabularInline
from channels_app.models import (
    Campaign,
    CampaignRecipient,
    Contact,
    ContactOptOut,
    Interaction,
    InteractionState,
    Message,
    MessageDirection,
    MessageStatus,
)
from channels_app.options_catalog import IW
from channels_app.selectors import interaction_history, restrict
from channels_app.services.access import contact_export
from channels_app.services.erasure import contact_erase, contact_erasure_preview
from channels_app.services.interactions import interaction_end
from channels_app.services.media import messages_media
from channels_app.services.options import session_option


class ReadOnlyAdminMixin:
    """Rows written by services only: viewable, not addable or editable here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class HistoryAdminMixin:
    """History written by services (interactions, messages, deliveries): a
    page of one row is read-only (no Save, no Delete); the change list keeps
    the actions, which call services; nothing is bulk-deleted."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # The change list needs it for its actions; the page of one row never saves.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False


class CampaignFilter(admin.SimpleListFilter):
    """Interactions a campaign opened (its recipients' messages), among the user's campaigns."""

    title = "campaign"
    parameter_name = "campaign"

    def lookups(self, request, model_admin):
        campaigns = restrict(Campaign.objects.order_by("-created_at"), request.user)[:50]
        return [(str(campaign.pk), campaign.name) for campaign in campaigns]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(messages__campaign_recipient__campaign_id=self.value()).distinct()
        return queryset


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
    actions = ["erase_contacts"]
    change_form_template = "admin/channels_app/contact/change_form.html"

    def has_add_permission(self, request):
        return False  # contacts are found or created by the conversations themselves

    def has_erase_permission(self, request, obj=None):
        return rights.rule("admin:channels_app_contact_erase").allows(request.user)

    def get_urls(self):
        return [
            path("<path:object_id>/erase/", self.guarded(self.erase_view, "admin:channels_app_contact_erase"),
                 name="channels_app_contact_erase"),
            path("<path:object_id>/export/", self.guarded(self.export_view, "admin:channels_app_contact_export"),
                 name="channels_app_contact_export"),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and self.has_erase_permission(request, obj):
            context["erase_url"] = reverse("admin:channels_app_contact_erase", args=[obj.pk])
        if obj is not None:
            context["export_url"] = reverse("admin:channels_app_contact_export", args=[obj.pk])
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    @admin.action(description="Erase the selected contacts and their personal data (asks first)",
                  permissions=["erase"])
    def erase_contacts(self, request, queryset):
        contacts = list(queryset)
        if request.POST.get("confirm") == "yes":
            self._erase(request, contacts)
            return None
        return self._erase_page(request, contacts, from_action=True)

    def erase_view(self, request, object_id):
        """The *Erase* button of a contact's page: asks first, then erases and goes back to the list."""
        contact = self.get_object(request, unquote(object_id))  # the caller's tenants only
        if contact is None:
            raise Http404("No such contact.")
        if request.method == "POST":
            self._erase(request, [contact])
            return HttpResponseRedirect(reverse("admin:channels_app_contact_changelist"))
        return self._erase_page(request, [contact], from_action=False)

    def export_view(self, request, object_id):
        """The *Export* button: the contact's data as the API's export gives it (the right of access)."""
        contact = self.get_object(request, unquote(object_id))  # the caller's tenants only
        if contact is None:
            raise Http404("No such contact.")
        return FileResponse(contact_export(contact=contact), as_attachment=True,
                            filename=f"contact-{contact.pk}.zip", content_type="application/zip")

    def _erase(self, request, contacts):
        for contact in contacts:
            erased = contact_erase(contact=contact)
            what = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in erased.items() if count)
            self.message_user(request, f"Contact {contact.pk} erased ({what}).", messages.SUCCESS)

    def _erase_page(self, request, contacts, *, from_action: bool):
        context = {
            **self.admin_site.each_context(request),
            "title": "Erase contacts?" if len(contacts) > 1 else "Erase this contact?",
            "opts": self.model._meta,
            "rows": [(contact, contact_erasure_preview(contact=contact)) for contact in contacts],
            "from_action": from_action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "back_url": (reverse("admin:channels_app_contact_change", args=[contacts[0].pk])
                         if not from_action else reverse("admin:channels_app_contact_changelist")),
        }
        return TemplateResponse(request, "admin/channels_app/contact/erase.html", context)


@admin.register(Interaction)
class InteractionAdmin(HistoryAdminMixin, ScopedModelAdmin):
    list_display = [
        "id", "contact_name", "channel", "last_message", "state", "campaign", "type", "queue", "last_activity_at",
    ]
    list_display_links = ["id", "contact_name"]
    list_filter = ["state", CampaignFilter, "channel", "type", "queue", ReplyFilter, "created_at"]
    date_hierarchy = "created_at"
    search_fields = ["id", "client_id", "contact__first_name", "contact__last_name", "contact__nickname"]
    list_select_related = ["channel", "contact"]
    actions = ["end_sessions"]
    fieldsets = [
        (None, {"fields": ["id", "type", "subtype", "state", "disposition", "channel", "contact_link", "client_id",
                           "queue", "campaign"]}),
        ("Transcript", {"fields": ["older_messages", "transcript"]}),
        ("Session", {"fields": ["created_at", "last_activity_at", "last_customer_message_at", "ended_at",
                                "end_reason", "terminate_after_send", "user_data", "session_options"]}),
    ]
    readonly_fields = [
        "id", "type", "subtype", "state", "disposition", "channel", "contact_link", "client_id", "queue", "campaign",
        "older_messages", "transcript", "created_at", "last_activity_at", "last_customer_message_at", "ended_at",
        "end_reason", "terminate_after_send", "user_data", "session_options",
    ]

    def get_queryset(self, request):
        last = Message.objects.filter(interaction=OuterRef("pk")).order_by("-created_at", "-id")
        campaign = CampaignRecipient.objects.filter(message__interaction=OuterRef("pk")).values("campaign__name")
        return super().get_queryset(request).annotate(
            last_text=Subquery(last.annotate(short=Left("text", 80)).values("short")[:1]),
            last_direction=Subquery(last.values("direction")[:1]),
            campaign_name=Subquery(campaign[:1]),
        )

    @admin.display(description="contact", ordering="contact__first_name")
    def contact_name(self, interaction):
        return str(interaction.contact)

    @admin.display(description="last message")
    def last_message(self, interaction):
        if interaction.last_text is None:
            return "—"
        arrow = "←" if interaction.last_direction == MessageDirection.INBOUND else "→"
        return f"{arrow} {Truncator(interaction.last_text).chars(50)}"

    @admin.display(description="campaign")
    def campaign(self, interaction):
        return getattr(interaction, "campaign_name", None) or "—"

    @admin.display(description="contact")
    def contact_link(self, interaction):
        url = reverse("admin:channels_app_contact_change", args=[interaction.contact_id])
        return format_html('<a href="{}">{}</a>', url, interaction.contact)

    @admin.display(description="transcript")
    def transcript(self, interaction):
        """As the WhatsApp guide describes the message area: customer messages
        left, agent messages right, errors and the session date centered, and
        the origin time in bold when a message arrived late."""
        return mark_safe(_transcript_html(interaction, interaction.messages.select_related("delivery"), interaction))

    @admin.display(description="older messages")
    def older_messages(self, interaction):
        """"See older messages..." (WhatsApp guide), as GET /api/interactions/{id}/history/ gives them: the
        contact's earlier interactions (same channel, or every channel with
        whatsappsession.show-cross-channel-messages), at most whatsappsession.transcript-interactions-count,
        oldest first as a message area shows them."""
        # The interaction shown is one of the caller's tenants; its contact's interactions are of that tenant.
        earlier = interaction_history(user=None, interaction=interaction)
        if not earlier:
            return "None."
        return mark_safe("".join(
            _transcript_html(older, older.messages.all(), interaction) for older in reversed(earlier)
        ))

    @admin.action(description="End the selected sessions", permissions=["change"])
    def end_sessions(self, request, queryset):
        ended = 0
        for interaction in queryset.exclude(state=InteractionState.ENDED):
            interaction_end(interaction=interaction, reason=f"ended by {request.user.get_username()} in the admin")
            ended += 1
        self.message_user(request, f"{ended} session(s) ended.", messages.SUCCESS)



def _transcript_html(interaction, messages, current) -> str:
    """As the WhatsApp guide describes the message area: customer messages
    left, agent messages right, errors and the session date centered, the
    origin time in bold when a message arrived late (the delay option of
    the interaction being shown), and in red a timestamp out of
    chronological order."""
    delay = timedelta(seconds=session_option(
        interaction=current, section=IW, name="whatsappsession.message-delay-timespan"
    ))
    rows = []
    messages = list(messages.prefetch_related("attachments"))
    media = messages_media(messages=messages, channel=interaction.channel)  # files, thumbnails, locations
    latest_shown = None
    for message in messages:
        delayed = bool(message.origin_time and message.created_at - message.origin_time > delay)
        # "If there is an issue in displaying the message in the correct chronological order, the timestamp
        # is highlighted in red": messages are in arrival order, so only a shown origin time can be earlier
        # than a timestamp shown above it.
        shown = message.origin_time if delayed else message.created_at
        out_of_order = latest_shown is not None and shown < latest_shown
        latest_shown = shown if latest_shown is None else max(latest_shown, shown)
        rows.append({
            "message": message,
            "side": "customer" if message.direction == MessageDirection.INBOUND else "agent",
            "delayed": delayed,
            "out_of_order": out_of_order,
            "error": message.status == MessageStatus.FAILED,
            "media": media.get(message.pk, {}),
        })
    # render_to_string escapes every value it inserts
    context = {"interaction": interaction, "rows": rows}
    return render_to_string("admin/channels_app/interaction/transcript.html", context)


@admin.register(Message)
class MessageAdmin(HistoryAdminMixin, ScopedModelAdmin):
    list_display = ["id", "direction", "status", "channel", "interaction", "short_text", "external_id", "created_at"]
    list_filter = ["direction", "status", "channel", "created_at"]
    search_fields = ["id", "external_id", "channel_message_id", "text", "interaction__id"]
    list_select_related = ["channel"]
    readonly_fields = [f.name for f in Message._meta.fields]

    def lookup_allowed(self, lookup, value, request=None):
        # The Reports page's drill-down: the messages of the conversations behind a figure (still scoped).
        return lookup in REPORT_MESSAGE_LOOKUPS or super().lookup_allowed(lookup, value, request)

    @admin.display(description="text")
    def short_text(self, message):
        return message.text[:60]
