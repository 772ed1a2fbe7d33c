"""Admin for the webhook delivery log; redelivery goes through the service."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from channels_app.admin.conversations import ReadOnlyAdminMixin
from channels_app.admin.scoping import ScopedModelAdmin, ScopedTabularInline
from channels_app.models import Delivery, DeliveryAttempt, DeliveryState
from channels_app.services.deliveries import delivery_redeliver


class DeliveryAttemptInline(ReadOnlyAdminMixin, ScopedTabularInline):
    model = DeliveryAttempt
    fields = ["number", "started_at", "outcome", "status_code", "latency_ms", "error", "response_excerpt"]
    readonly_fields = fields
    extra = 0

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    list_display = ["message_link", "channel", "state", "attempts", "next_attempt_at", "last_error", "created_at"]
    list_filter = ["state", "channel", "created_at"]
    date_hierarchy = "created_at"
    search_fields = ["message__id", "message__external_id", "message__interaction__id", "last_error"]
    list_select_related = ["channel", "message"]
    inlines = [DeliveryAttemptInline]
    actions = ["redeliver"]
    readonly_fields = [
        "message_link", "channel", "state", "attempts", "next_attempt_at", "first_attempt_at", "lease_until",
        "last_error", "created_at", "delivered_at",
    ]
    fields = readonly_fields

    @admin.display(description="message", ordering="message__id")
    def message_link(self, delivery):
        url = reverse("admin:channels_app_interaction_change", args=[delivery.message.interaction_id])
        return format_html('<a href="{}">{}</a>', url, delivery.message_id)

    def has_change_permission(self, request, obj=None):
        # Needed by the redeliver action; every field stays read-only.
        return request.user.has_perm("channels_app.change_delivery")

    @admin.action(description="Redeliver the selected failed deliveries")
    def redeliver(self, request, queryset):
        started = sum(delivery_redeliver(delivery=delivery) for delivery in queryset.filter(state=DeliveryState.FAILED))
        skipped = queryset.count() - started
        self.message_user(request, f"{started} delivery(ies) started again; {skipped} were not failed.", messages.INFO)
