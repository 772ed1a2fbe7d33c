"""Admin for users and their tenants: who may see and change what.

A user who is not a superuser sees the users of its own tenants, may grant
only what it holds itself (its tenants, its groups) and may change or delete
only users all of whose tenants are its own, as over the API
(`channels_app.services.users.user_may_change`): a user shared with another
tenant is shown read-only (change page, password form, delete page and the
delete action alike)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from channels_app.admin.scoping import ScopedTabularInline
from channels_app.models import Membership, Tenant
from channels_app.selectors import restrict, user_list
from channels_app.services.two_factor import second_factor_reset
from channels_app.services.users import (
    user_change_refusal,
    user_create,
    user_may_change,
    user_password_refusal,
)

User = get_user_model()


class MembershipOfUserInline(ScopedTabularInline):
    model = Membership
    fk_name = "user"
    extra = 1
    verbose_name = "tenant membership"
    verbose_name_plural = "tenants (the user sees and changes only what these hold)"


class UserAddForm(UserCreationForm):
    """The add page: who the user is, its password, and what it may open (its tenants and roles), so that it
    signs in at once. "May sign in" (staff status) is ticked, as over the API."""

    # Both scoped to what the administrator holds (UserAdmin.get_form).
    tenants = forms.ModelMultipleChoiceField(
        queryset=Tenant.objects.none(), widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one tenant: a user in no tenant sees nothing."},
        help_text="The contact centers whose data the user sees and changes.",
    )
    groups = forms.ModelMultipleChoiceField(
        queryset=Group.objects.none(), widget=forms.CheckboxSelectMultiple, required=False, label="Roles",
        help_text="What the user may do in its tenants, e.g. WhatsApp agent. Without a role it sees nothing.",
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email", "groups", "is_staff")
        labels = {"is_staff": "May sign in"}
        help_texts = {"is_staff": "Signs in at this admin, where its roles decide what it sees (agents included)."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["is_staff"].initial = True


admin.site.unregister(User)
# Two-factor devices are changed only by their owner's enrolment and a superuser's reset (the action below),
# never edited: their secrets stay off the admin's pages.
for _model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    inlines = [MembershipOfUserInline]
    add_form = UserAddForm
    add_form_template = "admin/auth/user/dms_add_form.html"
    add_fieldsets = (
        (None, {"fields": ("username", "password1", "password2", "email")}),
        ("Access", {"fields": ("tenants", "groups", "is_staff")}),
    )
    list_display = ["username", "email", "is_staff", "is_superuser", "is_active", "group_names"]
    actions = ["reset_two_factor"]

    def has_reset_two_factor_permission(self, request):
        return request.user.is_superuser

    @admin.action(description="Reset two-factor authentication of the selected users (they enrol again)",
                  permissions=["reset_two_factor"])
    def reset_two_factor(self, request, queryset):
        reset = [user.get_username() for user in queryset if second_factor_reset(user=user, reset_by=request.user)]
        if reset:
            self.message_user(request, f"Two-factor devices removed: {', '.join(reset)}. At their next sign-in "
                              "they set up an authenticator again.", messages.SUCCESS)
        else:
            self.message_user(request, "None of the selected users had a two-factor device.", messages.WARNING)

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

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or (self.has_change_permission(request, obj)
                           and not user_password_refusal(user=obj, changed_by=request.user)):
            return fieldsets
        # Read only, or a password the caller may not set: no "Reset password" button leading to a refusal.
        return [(name, {**options, "fields": [f for f in options["fields"] if f != "password"]})
                for name, options in fieldsets]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        user = self.get_object(request, object_id)
        if request.method == "GET" and user is not None and self.has_view_permission(request, user):
            if refusal := user_change_refusal(user=user, changed_by=request.user):
                self.message_user(request, f"Read only. {refusal}", messages.INFO)
            elif refusal := user_password_refusal(user=user, changed_by=request.user):
                self.message_user(request, f"Its password is not yours to set. {refusal}", messages.INFO)
        return super().change_view(request, object_id, form_url, extra_context)

    def user_change_password(self, request, id, form_url=""):
        user = self.get_object(request, unquote(id))
        if user is not None and user_password_refusal(user=user, changed_by=request.user):
            raise PermissionDenied  # its password would give the caller a right it was not given
        return super().user_change_password(request, id, form_url)

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []  # the add page chooses the tenants in its form

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is not None:
            return form
        # Grant only the tenants one is in and the groups one holds.
        tenants = restrict(Tenant.objects.order_by("pk"), request.user)
        groups = Group.objects.order_by("name") if request.user.is_superuser else request.user.groups.order_by("name")

        class ScopedUserAddForm(form):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.fields["tenants"].queryset = tenants
                self.fields["groups"].queryset = groups

        return ScopedUserAddForm

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        data = form.cleaned_data
        created = user_create(
            username=data["username"], password=data["password1"], email=data.get("email", ""),
            groups=list(data.get("groups") or []), tenants=list(data["tenants"]), is_staff=data["is_staff"],
            granted_by=request.user,
        )
        obj.__dict__.update({key: value for key, value in created.__dict__.items() if not key.startswith("_")})
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        if not change:
            return  # added: user_create gave the groups and tenants already
        if "groups" in form.cleaned_data and not request.user.is_superuser:
            # The page offers only the groups the caller holds: keep the others, as user_update does.
            kept = form.instance.groups.exclude(pk__in=request.user.groups.values_list("pk", flat=True))
            form.cleaned_data["groups"] = [*form.cleaned_data["groups"], *kept]
        super().save_related(request, form, formsets, change)

    def has_change_permission(self, request, obj=None):
        if obj is not None and not user_may_change(user=obj, changed_by=request.user):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and (not user_may_change(user=obj, changed_by=request.user) or obj.pk == request.user.pk):
            return False
        return super().has_delete_permission(request, obj)
