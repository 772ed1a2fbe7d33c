"""Admin for users and their tenants: who may see and change what.

A user who is not a superuser sees the users of its own tenants, may grant
only what it holds itself (its tenants, its groups) and may change or delete
only users all of whose tenants are its own, as over the API
(`channels_app.services.users.user_may_change`): a user shared with another
tenant is shown read-only (change page, password form, delete page and the
delete action alike)."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from channels_app.admin.scoping import ScopedTabularInline
from channels_app.models import Membership
from channels_app.selectors import user_list
from channels_app.services.users import user_may_change

User = get_user_model()


class MembershipOfUserInline(ScopedTabularInline):
    model = Membership
    fk_name = "user"
    extra = 1
    verbose_name = "tenant membership"
    verbose_name_plural = "tenants (the user sees and changes only what these hold)"


admin.site.unregister(User)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    inlines = [MembershipOfUserInline]
    list_display = ["username", "email", "is_staff", "is_superuser", "is_active", "group_names"]

    def get_queryset(self, request):
        return user_list(user=request.user).prefetch_related("groups")

    @admin.display(description="groups")
    def group_names(self, user):
        return ", ".join(group.name for group in user.groups.all())

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += ["is_superuser", "user_permissions", "last_login", "date_joined"]
        return readonly

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "groups" and not request.user.is_superuser:
            kwargs["queryset"] = request.user.groups.all()  # grant only the groups one holds
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        if obj is not None and not user_may_change(user=obj, changed_by=request.user):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and (not user_may_change(user=obj, changed_by=request.user) or obj.pk == request.user.pk):
            return False
        return super().has_delete_permission(request, obj)
