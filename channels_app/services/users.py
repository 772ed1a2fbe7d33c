"""Users of the server, their groups (roles) and their tenants.

A user who is not a superuser may grant only what it holds itself: tenants
it is a member of and groups it is in (API.md, "Users and memberships"), and
may change or delete only users all of whose tenants it administers: a user
shared with a tenant the caller is not a member of belongs to that tenant's
administrators too (its password opens that tenant)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from channels_app.errors import InvalidFields, PermissionDenied
from channels_app.models import Membership, Tenant
from channels_app.selectors import tenant_ids_for
from channels_app.services.tenants import memberships_set

User = get_user_model()


NOT_ADMINISTERED = (
    "This user is also a member of a tenant you are not a member of: only someone who administers every tenant "
    "of the user (or a superuser) may change or delete it."
)


MAY_DO_MORE = (
    "This user may do what you may not (a role or permission you lack), which its password would give you: only "
    "someone who may do all it may (or a superuser) sets its password."
)


def _permissions_of(user) -> set[str]:
    """Every permission `user` holds through its groups and its own, whether or not it is active (an
    administrator who may activate it would have them too)."""
    held = Permission.objects.filter(Q(group__user=user) | Q(user=user)).values_list(
        "content_type__app_label", "codename")
    return {f"{app}.{codename}" for app, codename in held}


def user_change_refusal(*, user, changed_by) -> str | None:
    """Why `changed_by` may not change or delete `user` (its password, groups, tenants, flags), or None when it
    may: a superuser may; nobody else may change a superuser; otherwise every tenant of `user` must be one of
    `changed_by`'s (its password is `user_password_refusal`'s too). The permission to change users at all is
    the rights table's business."""
    if changed_by.is_superuser:
        return None
    if user.is_superuser:
        return "Only a superuser may change or delete a superuser."
    own = tenant_ids_for(changed_by) or frozenset()
    if Membership.objects.filter(user=user).exclude(tenant_id__in=own).exists():
        return NOT_ADMINISTERED  # names no tenant: the caller doesn't see it
    return None


def user_password_refusal(*, user, changed_by) -> str | None:
    """Why `changed_by` may not set `user`'s password, or None when it may: as for any change
    (`user_change_refusal`), and `user` may do nothing `changed_by` may not, as its password would give
    `changed_by` that right (as granting a group one does not hold would). Its other fields may still be
    changed (the groups the caller does not hold are kept)."""
    if refusal := user_change_refusal(user=user, changed_by=changed_by):
        return refusal
    if changed_by.is_superuser or user.pk == changed_by.pk:
        return None
    return None if _permissions_of(user) <= changed_by.get_all_permissions() else MAY_DO_MORE


def user_may_change(*, user, changed_by) -> bool:
    """Whether `changed_by` may change or delete `user` (`user_change_refusal`)."""
    return user_change_refusal(user=user, changed_by=changed_by) is None


def _check_may_change(*, user, changed_by) -> None:
    if refusal := user_change_refusal(user=user, changed_by=changed_by):
        raise PermissionDenied(refusal, field="id")


def _check_grants(*, granted_by, groups: list[Group] | None, tenants: list[Tenant] | None, user=None) -> None:
    if granted_by.is_superuser:
        return
    if user is not None:
        _check_may_change(user=user, changed_by=granted_by)
    if tenants is not None:
        own = tenant_ids_for(granted_by) or frozenset()
        foreign = sorted(tenant.pk for tenant in tenants if tenant.pk not in own)
        if foreign:
            # Tenants the caller can't see don't exist for it: the same words as an unknown id.
            raise InvalidFields({"tenants": [f"Unknown tenant(s): {', '.join(map(str, foreign))}."]})
    if groups is not None:
        own_groups = set(granted_by.groups.values_list("pk", flat=True))
        not_held = sorted(group.name for group in groups if group.pk not in own_groups)
        if not_held:
            raise PermissionDenied(f"You may grant only groups you are in: not {', '.join(not_held)}.",
                                   field="groups")


def _validate_password(password: str, user) -> None:
    try:
        validate_password(password, user)
    except ValidationError as error:
        raise InvalidFields({"password": list(error.messages)}) from error


@transaction.atomic
def user_create(
    *, username: str, password: str, groups: list[Group], tenants: list[Tenant], granted_by,
    email: str = "", is_staff: bool = True,
):
    """Create a user with its groups and tenants; `is_staff` lets it open the
    admin, where its permissions decide what it sees."""
    _check_grants(granted_by=granted_by, groups=groups, tenants=tenants)
    user = User(username=username, email=email, is_staff=is_staff)
    _validate_password(password, user)
    user.set_password(password)
    try:
        user.full_clean()
    except ValidationError as error:
        raise InvalidFields.from_django(error) from error
    user.save()
    user.groups.set(groups)
    memberships_set(user=user, tenants=tenants)
    return user


@transaction.atomic
def user_update(
    *, user, granted_by, password: str | None = None, groups: list[Group] | None = None,
    tenants: list[Tenant] | None = None, email: str | None = None, is_staff: bool | None = None,
    is_active: bool | None = None,
):
    """Change a user. A new password revokes the user's tokens (on save)."""
    _check_grants(granted_by=granted_by, groups=groups, tenants=tenants, user=user)
    if password is not None and (refusal := user_password_refusal(user=user, changed_by=granted_by)):
        raise PermissionDenied(refusal, field="password")
    if password is not None:
        _validate_password(password, user)
        user.set_password(password)
    for name, value in (("email", email), ("is_staff", is_staff), ("is_active", is_active)):
        if value is not None:
            setattr(user, name, value)
    try:
        user.full_clean()
    except ValidationError as error:
        raise InvalidFields.from_django(error) from error
    user.save()
    if groups is not None:
        if not granted_by.is_superuser:  # keep the groups the caller could not have granted
            kept = user.groups.exclude(pk__in=granted_by.groups.values_list("pk", flat=True))
            groups = [*groups, *kept]
        user.groups.set(groups)
    if tenants is not None:
        if not granted_by.is_superuser:  # keep the memberships of tenants the caller does not see
            own = tenant_ids_for(granted_by) or frozenset()
            kept = Tenant.objects.filter(memberships__user=user).exclude(pk__in=own)
            tenants = [*tenants, *kept]
        memberships_set(user=user, tenants=tenants)
    return user


@transaction.atomic
def user_delete(*, user, deleted_by) -> None:
    _check_may_change(user=user, changed_by=deleted_by)
    if user.pk == deleted_by.pk:
        raise PermissionDenied("You cannot delete yourself.", field="id")
    user.delete()


def user_sign_in_refusal(*, user) -> str | None:
    """Why `user`, whose password is right, may not sign in to the admin, in words that say what is missing
    (None: it may). Staff status is the switch (new users have it, over the API and on the admin's add page);
    a user in no tenant or with no role would see nothing, so it is told so instead of an empty page."""
    if not user.is_staff:
        return ("The password is right, but this account may not sign in here: its Staff status (\"may sign in\") "
                "is not ticked. Ask an administrator to tick it on the account's page.")
    if user.is_superuser:
        return None
    if not tenant_ids_for(user):
        return ("The password is right, but this account is a member of no tenant, so it would see nothing here. "
                "Ask an administrator to add it to a tenant.")
    if not user.get_all_permissions():
        return ("The password is right, but this account has no role (group) and no permission, so it would see "
                "nothing here. Ask an administrator to give it a role.")
    return None
