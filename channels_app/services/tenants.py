"""Tenants and memberships: the wall between the contact centers one server hosts."""

import secrets

from django.core.exceptions import ValidationError
from django.db import transaction

from channels_app.errors import InvalidFields, InvalidParameter
from channels_app.models import Membership, Tenant

# Ids given to tenants created without one: drawn at random, so that an id tells nothing about the others.
ASSIGNED_IDS = range(100_000, 1_000_000)
ID_CHOSEN_BY_SUPERUSERS = (
    "Only a superuser chooses a tenant's id (it sees every tenant): leave it out and one is assigned."
)


def _free_tenant_id() -> int:
    while True:
        candidate = ASSIGNED_IDS[secrets.randbelow(len(ASSIGNED_IDS))]
        if not Tenant.objects.filter(pk=candidate).exists():
            return candidate


@transaction.atomic
def tenant_create(*, name: str, tenant_id: int | None = None, created_by=None, timezone: str | None = None) -> Tenant:
    """Create a tenant; the user who creates it becomes its member (a
    superuser sees every tenant already). A superuser (or a command, with no
    `created_by`) may choose its id; anyone else gets one assigned, as
    choosing would tell whether an id of a tenant it does not see exists."""
    if tenant_id is not None and created_by is not None and not created_by.is_superuser:
        raise InvalidFields({"id": [ID_CHOSEN_BY_SUPERUSERS]})
    tenant = Tenant(id=_free_tenant_id() if tenant_id is None else tenant_id, name=name)
    if timezone is not None:
        tenant.timezone = timezone
    try:
        tenant.full_clean()
    except ValidationError as error:
        raise InvalidFields.from_django(error) from error
    tenant.save()
    if created_by is not None and not created_by.is_superuser:
        Membership.objects.create(user=created_by, tenant=tenant)
    return tenant


@transaction.atomic
def tenant_update(*, tenant: Tenant, name: str, timezone: str | None = None) -> Tenant:
    tenant.name = name
    if timezone is not None:  # the zone of recipients a send window cannot place otherwise (services.send_windows)
        tenant.timezone = timezone
    try:
        tenant.full_clean()
    except ValidationError as error:
        raise InvalidFields.from_django(error) from error
    tenant.save()
    return tenant


@transaction.atomic
def tenant_delete(*, tenant: Tenant) -> None:
    """Delete a tenant that holds nothing any more (channels, contacts, the response library)."""
    channels = list(tenant.channels.values_list("channel_id", flat=True))
    if channels:
        raise InvalidParameter(f"Tenant {tenant.id} still has channels: {', '.join(channels)}.", field="id")
    held = [
        what for what, relation in (
            ("contacts", tenant.contacts),
            ("standard responses", tenant.standard_responses),
            ("standard response categories", tenant.standard_response_categories),
            ("attachments", tenant.attachments),
        ) if relation.exists()
    ]
    if held:
        raise InvalidParameter(f"Tenant {tenant.id} still holds {', '.join(held)}: delete them first.", field="id")
    tenant.delete()


@transaction.atomic
def memberships_set(*, user, tenants: list[Tenant]) -> None:
    """Make `user` a member of exactly `tenants` (takes effect on the user's next request). Each membership
    granted or revoked is its own audit entry (of its tenant): one row at a time, as bulk_create sends no
    signal."""
    wanted = {tenant.pk for tenant in tenants}
    Membership.objects.filter(user=user).exclude(tenant_id__in=wanted).delete()
    existing = set(Membership.objects.filter(user=user).values_list("tenant_id", flat=True))
    for pk in sorted(wanted - existing):
        Membership.objects.create(user=user, tenant_id=pk)
