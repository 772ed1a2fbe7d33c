"""Admin for the queues routed by the server or outside (API.md, "Routing to agents"): what waits in each
and for how long; saved and deleted through services.routing."""

from django import forms
from django.contrib import admin
from django.utils import timezone

from channels_app.admin.forms import TextRulesModelForm
from channels_app.admin.scoping import ScopedModelAdmin
from channels_app.models import Queue
from channels_app.selectors import user_list
from channels_app.services.routing import (
    oldest_waiting_seconds,
    queue_agents_outside,
    queue_delete,
    queue_save,
    queues_with_waiting,
)


class QueueForm(TextRulesModelForm):
    class Meta:
        model = Queue
        fields = ["key", "tenant", "routing", "offer_timeout_seconds", "agents"]

    def clean(self):
        cleaned = super().clean()
        tenant = cleaned.get("tenant") or (self.instance.tenant if self.instance.tenant_id else None)
        agents = cleaned.get("agents")
        if tenant is not None and agents and (strangers := queue_agents_outside(tenant_id=tenant.pk, agents=agents)):
            self.add_error("agents", forms.ValidationError(
                f"Not members of tenant {tenant}: {', '.join(strangers)}."))
        return cleaned


@admin.register(Queue)
class QueueAdmin(ScopedModelAdmin):
    form = QueueForm
    list_display = ["key", "tenant", "routing", "offer_timeout_seconds", "agent_count", "waiting", "oldest_wait"]
    list_filter = ["routing", "tenant"]
    search_fields = ["key"]
    fields = ["key", "tenant", "routing", "offer_timeout_seconds", "agents"]
    filter_horizontal = ["agents"]
    delete_service = queue_delete

    def get_queryset(self, request):
        return queues_with_waiting(super().get_queryset(request).select_related("tenant"))

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "agents":  # users of the caller's tenants only
            kwargs["queryset"] = user_list(user=request.user).order_by("username")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return ["key", "tenant"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        queue_save(queue=obj, agents=list(form.cleaned_data.get("agents") or []))

    @admin.display(description="agents")
    def agent_count(self, queue) -> int:
        return queue.agents.count()

    @admin.display(description="waiting", ordering="waiting_count")
    def waiting(self, queue) -> int:
        return queue.waiting_count

    @admin.display(description="oldest wait", ordering="oldest_queued_at")
    def oldest_wait(self, queue) -> str:
        seconds = oldest_waiting_seconds(queue.oldest_queued_at, timezone.now())
        if seconds is None:
            return "-"
        minutes, seconds = divmod(seconds, 60)
        return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
