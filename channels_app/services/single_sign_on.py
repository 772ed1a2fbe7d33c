"""Who an OpenID Connect sign-in is (API.md, "Sign-in"; README "Sign-in"): the user found by the ID token's
e-mail, or created, with the groups and tenants the provider's groups give.

`OIDC_GROUP_MAP` ({"<provider group>": {"groups": [...], "tenants": [...]}}) names the groups and tenants the
provider manages: at every sign-in the user holds exactly those of them its provider groups give (one removed
from a provider group loses what it gave); groups and tenants the map does not name, given here by an
administrator, are left alone. A group or tenant of the map that does not exist here is skipped with a warning in
the log, never created. A new user is created only when its provider groups give it at least one group."""

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from channels_app.models import Membership, Tenant

logger = logging.getLogger(__name__)


class SignInRefused(Exception):
    """The provider's answer does not sign anyone in here; the message says why, to the user."""


def _provider_groups(claims: dict) -> set[str]:
    value = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return set()
    return {str(name) for name in value}


def _mapped(provider_groups: set[str]) -> tuple[set[str], set[int], set[str], set[int]]:
    """(groups given, tenants given, groups managed, tenants managed) by the map, by name and id."""
    given_groups, given_tenants, managed_groups, managed_tenants = set(), set(), set(), set()
    for provider_group, gives in settings.OIDC_GROUP_MAP.items():
        managed_groups.update(gives.get("groups", []))
        managed_tenants.update(gives.get("tenants", []))
        if provider_group in provider_groups:
            given_groups.update(gives.get("groups", []))
            given_tenants.update(gives.get("tenants", []))
    return given_groups, given_tenants, managed_groups, managed_tenants


def _existing_groups(names: set[str]) -> dict[str, Group]:
    found = {group.name: group for group in Group.objects.filter(name__in=names)}
    for name in sorted(names - set(found)):
        logger.warning("OIDC_GROUP_MAP names the group %r, which does not exist here: skipped", name)
    return found


def _existing_tenants(ids: set[int]) -> set[int]:
    found = set(Tenant.objects.filter(pk__in=ids).values_list("pk", flat=True))
    for tenant_id in sorted(ids - found):
        logger.warning("OIDC_GROUP_MAP names the tenant %s, which does not exist here: skipped", tenant_id)
    return found


def single_sign_on_user(*, claims: dict):
    """The user the validated ID token's claims sign in, its groups and tenants brought in line with the
    provider's groups. Raises `SignInRefused` (nothing written) when no user can be found or created."""
    email = str(claims.get("email") or "").strip()
    if not email:
        raise SignInRefused("The identity provider sent no e-mail address, so no account here can be found.")
    if claims.get("email_verified") is False:
        raise SignInRefused("The identity provider has not verified this e-mail address.")
    given_groups, given_tenants, managed_groups, managed_tenants = _mapped(_provider_groups(claims))
    user_model = get_user_model()
    with transaction.atomic():
        found = list(user_model.objects.filter(email__iexact=email)[:2])
        if len(found) > 1:
            raise SignInRefused(f"More than one account here has the e-mail address {email}: ask an "
                                "administrator to keep it on one account only.")
        groups = _existing_groups(managed_groups)
        tenants = _existing_tenants(managed_tenants)
        user = found[0] if found else None
        if user is None:
            if not any(name in groups for name in given_groups):
                raise SignInRefused(f"No account here has the e-mail address {email}, and your groups at the "
                                    "identity provider give no role here, so none was created.")
            if user_model.objects.filter(username=email).exists():
                raise SignInRefused(f"The username {email} is taken by an account with another e-mail address.")
            user = user_model.objects.create_user(email, email=email, password=None, is_staff=True,
                                                  first_name=str(claims.get("given_name") or "")[:150],
                                                  last_name=str(claims.get("family_name") or "")[:150])
        if user.is_active:
            held = set(user.groups.filter(name__in=groups).values_list("name", flat=True))
            wanted = {name for name in given_groups if name in groups}
            if held - wanted:
                user.groups.remove(*[groups[name] for name in held - wanted])
            if wanted - held:
                user.groups.add(*[groups[name] for name in wanted - held])
            member_of = set(Membership.objects.filter(user=user, tenant_id__in=tenants)
                            .values_list("tenant_id", flat=True))
            wanted_tenants = given_tenants & tenants
            for membership in Membership.objects.filter(user=user, tenant_id__in=member_of - wanted_tenants):
                membership.delete()  # one by one: each is an audit entry
            for tenant_id in sorted(wanted_tenants - member_of):
                Membership.objects.create(user=user, tenant_id=tenant_id)
    return user
