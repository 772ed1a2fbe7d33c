"""Admin for the webhook delivery log, read as an operator reads it: which
attempt of how many, how long it took, where it went, what the third party
answered, when the next attempt is due; "retry now" goes through the service.
History is never edited or bulk-deleted here."""

from datetime import timedelta

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
from channels_app.models import Channel, Delivery, DeliveryAttempt, DeliveryState
from channels_app.services.deliveries import (
    SendOutcome,
    attempt_error_in_words,
    delivery_redeliver,
    delivery_retry_now,
)


def _last_attempt(delivery: Delivery) -> DeliveryAttempt | None:
    attempts = list(delivery.attempt_log.all())  # prefetched in number order
    return attempts[-1] if attempts else None


def _with_detail(words: str, detail: str, width: int = 0):
    """Words a person reads with the raw detail behind them: a <details> on a change page (`width` 0), the
    title of a line truncated to `width` in a list."""
    if width:
        return format_html('<span title="{}">{}</span>', detail, Truncator(words).chars(width))
    if not detail or detail == words:
        return words
    return format_html('<details class="dms-raw-error"><summary>{}</summary><pre>{}</pre></details>', words, detail)


def _what_happened(attempt: DeliveryAttempt, width: int = 0):
    """"answered 200", "connection refused", "answered 503": the raw error and the answer's excerpt behind."""
    if attempt.outcome == SendOutcome.ACCEPTED:
        words = f"answered {attempt.status_code}" if attempt.status_code else "accepted"
    else:
        words = attempt_error_in_words(error=attempt.error, status_code=attempt.status_code) or "—"
    detail = "\n".join(part for part in (attempt.error, attempt.response_excerpt) if part)
    return _with_detail(words, detail, width)


def _answer(attempt: DeliveryAttempt | None, width: int = 0):
    if attempt is None:
        return "—"
    return format_html("<b>{}</b> {}", attempt.outcome, _what_happened(attempt, width))


def duration_in_words(elapsed: timedelta) -> str:
    """"40 s", "3 min", "2 h 5 min", "3 days": how long, as a person says it."""
    seconds = max(0, int(elapsed.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"


def circuit_in_words(channel: Channel):
    """A channel's circuit: "down for 3 min" (since when in its title), or up with its failures in a row."""
    if channel.down_since is not None:
        return format_html('<b class="dms-down" style="color: #b00;" title="down since {}">down for {}</b>',
                           timezone.localtime(channel.down_since).isoformat(timespec="seconds"),
                           duration_in_words(timezone.now() - channel.down_since))
    if channel.consecutive_failures:
        return f"up ({channel.consecutive_failures} failure(s) in a row)"
    return "up"


class DeliveryAttemptInline(ReadOnlyAdminMixin, ScopedTabularInline):
    model = DeliveryAttempt
    fields = ["number", "started_at", "outcome", "status_code", "latency", "what_happened"]
    readonly_fields = fields
    extra = 0
    verbose_name_plural = "attempts (what the third party answered)"

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="latency")
    def latency(self, attempt):
        return f"{round(attempt.latency_ms)} ms"

    @admin.display(description="what happened")
    def what_happened(self, attempt):
        return _what_happened(attempt)


@admin.register(Delivery)
class DeliveryAdmin(HistoryAdminMixin, ScopedModelAdmin):
    list_display = [
        # the last attempt's latency is on the delivery's page: the list fits 1400 px with the delivery's link
        "delivery", "message_link", "channel", "state", "attempt_of", "target", "answer", "next_attempt", "created_at",
    ]
    list_filter = ["state", "channel", "created_at"]
    date_hierarchy = "created_at"
    search_fields = ["message__id", "message__external_id", "message__interaction__id", "last_error"]
    list_display_links = ["delivery"]  # the message column links to its interaction: a link of its own
    list_select_related = ["channel", "message"]
    inlines = [DeliveryAttemptInline]
    actions = ["redeliver"]
    change_form_template = "admin/channels_app/delivery/change_form.html"
    readonly_fields = [
        "message_link", "channel", "channel_circuit", "state", "attempt_of", "target", "answer_full", "next_attempt",
        "first_attempt_at", "lease_until", "last_error_in_words", "created_at", "delivered_at",
    ]
    fields = readonly_fields

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related(
            Prefetch("attempt_log", queryset=DeliveryAttempt.objects.order_by("number"))
        )

    @admin.display(description="delivery", ordering="pk")
    def delivery(self, delivery):
        return f"#{delivery.pk}"

    @admin.display(description="message", ordering="message__id")
    def message_link(self, delivery):
        url = reverse("admin:channels_app_interaction_change", args=[delivery.message.interaction_id])
        return format_html('<a href="{}">{}</a>', url, delivery.message_id)

    @admin.display(description="circuit of the channel")
    def channel_circuit(self, delivery):
        return circuit_in_words(delivery.channel)

    @admin.display(description="last error")
    def last_error_in_words(self, delivery):
        # The last attempt's status says whether an answer came; a delivery failed without an attempt of its
        # own (after the message before it failed) has only its sentence.
        if not delivery.last_error:
            return "—"
        attempt = _last_attempt(delivery)
        status_code = attempt.status_code if attempt is not None and attempt.error == delivery.last_error else None
        return _with_detail(attempt_error_in_words(error=delivery.last_error, status_code=status_code),
                            delivery.last_error)

    @admin.display(description="attempt", ordering="attempts")
    def attempt_of(self, delivery):
        # The first try plus the channel's redeliveries.
        return f"{delivery.attempts} of {delivery.channel.retry_attempts + 1}"

    @admin.display(description="target")
    def target(self, delivery):
        channel = delivery.channel
        return channel.webhook_url or f"({channel.get_transport_display()})"

    @admin.display(description="last answer")
    def answer(self, delivery):
        return _answer(_last_attempt(delivery), 60)

    @admin.display(description="last answer")
    def answer_full(self, delivery):
        return _answer(_last_attempt(delivery))

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
