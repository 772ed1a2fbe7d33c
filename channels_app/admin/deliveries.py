"""Admin for the webhook delivery log, read as an operator reads it: which
attempt of how many, how long it took, where it went, what the third party
answered, when the next attempt is due; "retry now" goes through the service.
History is never edited or bulk-deleted here."""

from django.contrib import admin, messages
from django.db.models import Prefetch
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.text import Truncator

from channels_app.admin.conversations import HistoryAdminMixin, ReadOnlyAdminMixin
from channels_app.admin.scoping import ScopedModelAdmin, ScopedTabularInline
from channels_app.models import Delivery, DeliveryAttempt, DeliveryState
from channels_app.services.deliveries import delivery_redeliver, delivery_retry_now


def _last_attempt(delivery: Delivery) -> DeliveryAttempt | None:
    attempts = list(delivery.attempt_log.all())  # prefetched in number order
    return attempts[-1] if attempts else None


def _status_and_excerpt(attempt: DeliveryAttempt | None, width: int):
    if attempt is None:
        return "—"
    status = f"HTTP {attempt.status_code}" if attempt.status_code else attempt.outcome
    text = attempt.response_excerpt or attempt.error
    return format_html("<b>{}</b> {}", status, Truncator(text).chars(width) if text else "")


class DeliveryAttemptInline(ReadOnlyAdminMixin, ScopedTabularInline):
    model = DeliveryAttempt
    fields = ["number", "started_at", "outcome", "status_code", "latency", "error", "response_excerpt"]
    readonly_fields = fields
    extra = 0
    verbose_name_plural = "attempts (what the third party answered)"

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="latency")
    def latency(self, attempt):
        return f"{round(attempt.latency_ms)} ms"


@admin.register(Delivery)
class DeliveryAdmin(HistoryAdminMixin, ScopedModelAdmin):
    list_display = [
        "message_link", "channel", "state", "attempt_of", "latency", "target", "answer", "next_attempt", "created_at",
    ]
    list_filter = ["state", "channel", "created_at"]
    date_hierarchy = "created_at"
    search_fields = ["message__id", "message__external_id", "message__interaction__id", "last_error"]
    list_select_related = ["channel", "message"]
    inlines = [DeliveryAttemptInline]
    actions = ["redeliver"]
    change_form_template = "admin/channels_app/delivery/change_form.html"
    readonly_fields = [
        "message_link", "channel", "state", "attempt_of", "target", "answer_full", "next_attempt", "first_attempt_at",
        "lease_until", "last_error", "created_at", "delivered_at",
    ]
    fields = readonly_fields

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related(
            Prefetch("attempt_log", queryset=DeliveryAttempt.objects.order_by("number"))
        )

    @admin.display(description="message", ordering="message__id")
    def message_link(self, delivery):
        url = reverse("admin:channels_app_interaction_change", args=[delivery.message.interaction_id])
        return format_html('<a href="{}">{}</a>', url, delivery.message_id)

    @admin.display(description="attempt", ordering="attempts")
    def attempt_of(self, delivery):
        # The first try plus the channel's redeliveries.
        return f"{delivery.attempts} of {delivery.channel.retry_attempts + 1}"

    @admin.display(description="latency")
    def latency(self, delivery):
        attempt = _last_attempt(delivery)
        return f"{round(attempt.latency_ms)} ms" if attempt else "—"

    @admin.display(description="target")
    def target(self, delivery):
        channel = delivery.channel
        return channel.webhook_url or f"({channel.get_transport_display()})"

    @admin.display(description="last answer")
    def answer(self, delivery):
        return _status_and_excerpt(_last_attempt(delivery), 60)

    @admin.display(description="last answer")
    def answer_full(self, delivery):
        return _status_and_excerpt(_last_attempt(delivery), 500)

    @admin.display(description="next attempt", ordering="next_attempt_at")
    def next_attempt(self, delivery):
        if delivery.state != DeliveryState.PENDING:
            return "—"
        return formats.localize(timezone.localtime(delivery.next_attempt_at))

    @admin.action(description="Redeliver the selected failed deliveries", permissions=["change"])
    def redeliver(self, request, queryset):
        started = sum(delivery_redeliver(delivery=delivery) for delivery in queryset.filter(state=DeliveryState.FAILED))
        skipped = queryset.count() - started
        self.message_user(request, f"{started} delivery(ies) started again; {skipped} were not failed.", messages.INFO)

    def get_urls(self):
        return [
            path("<int:pk>/retry/", self.guarded(self.retry_view, "admin:channels_app_delivery_retry"),
                 name="channels_app_delivery_retry"),
            *super().get_urls(),
        ]

    def retry_view(self, request, pk):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        delivery = get_object_or_404(self.get_queryset(request), pk=pk)
        if delivery_retry_now(delivery=delivery):
            self.message_user(request, f"Delivery of {delivery.message_id}: retrying now.", messages.SUCCESS)
        else:
            self.message_user(request, f"Delivery of {delivery.message_id} is {delivery.state} or being sent: "
                              "nothing to retry.", messages.WARNING)
        return redirect(reverse("admin:channels_app_delivery_change", args=[pk]))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.state != DeliveryState.DELIVERED and request.user.has_perm(
            "channels_app.change_delivery"
        ):
            context["retry_url"] = reverse("admin:channels_app_delivery_retry", args=[obj.pk])
        return super().render_change_form(request, context, add, change, form_url, obj)
