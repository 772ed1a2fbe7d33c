"""What every admin page of the project shares: tenants as the wall, the
table of rights on extra views, and deletes through the services.

Changelists, change pages, autocomplete and raw-id lookups (which read the
related model admin's queryset), inlines, foreign-key and many-to-many
choices and related list filters all show only what the user's tenants
hold (`channels_app.selectors.restrict`)."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import models

from channels_app import rights
from channels_app.admin.forms import TextRulesModelForm
from channels_app.errors import ApplicationError
from channels_app.selectors import is_scoped, restrict, user_list


class TenantScopedMixin:
    def get_queryset(self, request):
        return restrict(super().get_queryset(request), request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        return _scoped_choices(field, request)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        return _scoped_choices(field, request)


def _scoped_choices(field, request):
    queryset = getattr(field, "queryset", None)
    if queryset is not None and is_scoped(queryset.model):
        field.queryset = restrict(queryset, request.user)
    elif queryset is not None and queryset.model is get_user_model():
        field.queryset = user_list(user=request.user)  # a tenant's new member: a user the caller sees
    return field


class ScopedModelAdmin(TenantScopedMixin, admin.ModelAdmin):
    """A model admin scoped by tenant. `delete_service` (a function taking the
    object by the model's name) deletes through the service, whose refusals
    become messages."""

    form = TextRulesModelForm  # every text an administrator submits keeps the text rules
    delete_service = None

    def get_list_filter(self, request):
        # A plain related filter lists every row of the related model (other tenants' channels among them):
        # list only the values the user's own rows hold.
        filters = []
        for entry in super().get_list_filter(request):
            if isinstance(entry, str) and _related_scoped(self.model, entry):
                entry = (entry, admin.RelatedOnlyFieldListFilter)
            filters.append(entry)
        return filters

    def delete_model(self, request, obj):
        if self.delete_service is None:
            return super().delete_model(request, obj)
        try:
            type(self).delete_service(**{self.model._meta.model_name: obj})
        except ApplicationError as error:
            self.message_user(request, f"{obj} was not deleted: {error.message}", messages.ERROR)

    def delete_queryset(self, request, queryset):
        if self.delete_service is None:
            return super().delete_queryset(request, queryset)
        for obj in queryset:
            self.delete_model(request, obj)

    def guarded(self, view, rule_key: str):
        """An extra view behind the admin's login and the rights table's rule."""
        rule = rights.rule(rule_key)

        def checked(request, *args, **kwargs):
            if rule is None or not rule.allows(request.user):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return self.admin_site.admin_view(checked)


def _related_scoped(model, name: str) -> bool:
    try:
        field = model._meta.get_field(name)
    except Exception:  # a lookup path or a method: left as it is
        return False
    return isinstance(field, models.ForeignKey) and is_scoped(field.related_model)


class ScopedTabularInline(TenantScopedMixin, admin.TabularInline):
    form = TextRulesModelForm
