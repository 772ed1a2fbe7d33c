"""The audit log in the admin: read only, scoped by the caller's tenants (API.md, "Audit log")."""

import json

from django.contrib import admin
from django.utils.html import format_html

from channels_app.models import AuditEntry, Tenant
from channels_app.selectors import restrict


class TenantFilter(admin.SimpleListFilter):
    """The caller's tenants only: another tenant's name is not shown either."""

    title = "tenant"
    parameter_name = "tenant"

    def lookups(self, request, model_admin):
        return [(str(tenant.pk), str(tenant)) for tenant in restrict(Tenant.objects.all(), request.user)]

    def queryset(self, request, queryset):
        return queryset.filter(tenant_id=self.value()) if self.value() else queryset


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["at", "username", "remote_addr", "action", "object_type", "object_id", "object_repr", "tenant"]
    list_filter = ["action", "object_type", TenantFilter]
    search_fields = ["username", "object_id", "object_repr", "remote_addr"]
    date_hierarchy = "at"
    list_select_related = ["tenant"]
    fields = ["at", "user", "username", "remote_addr", "action", "object_type", "object_id", "object_repr",
              "tenant", "changes_shown"]
    readonly_fields = fields

    def get_queryset(self, request):
        return restrict(super().get_queryset(request), request.user)

    @admin.display(description="changes (before, after)")
    def changes_shown(self, entry):
        return format_html("<pre>{}</pre>", json.dumps(entry.changes, indent=2, ensure_ascii=False))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
