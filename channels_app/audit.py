"""The audit log (API.md, "Audit log"): who changed what, when, from where, before → after.

How an entry is written, without the services having to remember it:

* `AuditContextMiddleware` keeps the current request in a context variable.
  The actor is read from it lazily, when an entry is written: by then DRF's
  token authentication has set `request.user` on the underlying Django
  request, so the API, the admin and ESP name the same user. The address is
  the one DRF's throttling uses (`NUM_PROXIES`, channels_app/client_address.py).
  Outside a request (workers, management commands) the actor is "system".
* Signals on the configuration models registered in `audit_register()` (and
  only on them: never on messages, deliveries, recipients, interactions or
  contacts, the hot path): `pre_save` reads the stored row (one query),
  `post_save` writes a create or an update with the fields that changed,
  `post_delete` a delete, `m2m_changed` the groups and permissions of users and
  groups and the attachments of standard responses. They run inside the
  transaction of the change, so an entry exists exactly when the change does.
* `audit_record()` for what signals cannot see: campaign state changes made
  with `QuerySet.update` by the system, token revocations.

Values of fields named like a secret, a token or a password are never
stored: they become "••••••" (empty stays empty, so "set" and "removed"
still show).
"""

import json
import re
from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ObjectDoesNotExist
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Model
from django.db.models.fields.files import FieldFile
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from channels_app.client_address import client_ip
from channels_app.models import (
    Attachment,
    AuditAction,
    AuditEntry,
    BusinessAttribute,
    BusinessAttributeValue,
    Campaign,
    Channel,
    Endpoint,
    Membership,
    OptionValue,
    Queue,
    Segment,
    StandardResponse,
    StandardResponseCategory,
    Tenant,
)

MASK = "••••••"
SECRET_NAME = re.compile(r"secret|token|password", re.IGNORECASE)
SYSTEM = "system"

_current_request: ContextVar = ContextVar("audit_request", default=None)
_muted: ContextVar = ContextVar("audit_muted", default=frozenset())


class AuditContextMiddleware:
    """Keeps the request of this thread or task for the entries written while it is served."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        reset = _current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            _current_request.reset(reset)


def _actor() -> tuple[Model | None, str, str | None]:
    """(user, username, address) of the change being recorded."""
    request = _current_request.get()
    if request is None:
        return None, SYSTEM, None
    user = getattr(request, "user", None)
    address = client_ip(request)
    if user is not None and user.is_authenticated:
        return user, user.get_username(), address
    return None, "", address


def mask(name: str, value):
    """The value as an entry may hold it: a secret's is never kept (until when a secret is valid is no secret)."""
    if SECRET_NAME.search(name) and not name.endswith("_until") and value not in (None, ""):
        return MASK
    return value


def _masked(changes: dict) -> dict:
    return {name: [mask(name, before), mask(name, after)] for name, (before, after) in changes.items()}


def _plain(value):
    """A JSON value: dates as ISO text, decimals and UUIDs as text, files as their name."""
    if isinstance(value, FieldFile):
        value = value.name or ""
    try:
        return json.loads(json.dumps(value, cls=DjangoJSONEncoder))
    except (TypeError, ValueError):
        return str(value)


def audit_record(
    *,
    action: str,
    object_type: str,
    object_id,
    object_repr: str = "",
    changes: dict | None = None,
    tenant_id: int | None = None,
    system: bool = False,
) -> AuditEntry:
    """Write one entry, as the current request's user (or "system": outside a request, or when
    `system`, for what the server does by itself). `changes`: {"field": [before, after]}, masked here."""
    user, username, address = (None, SYSTEM, None) if system else _actor()
    return AuditEntry.objects.create(
        tenant_id=tenant_id,
        user=user,
        username=username[:150],
        remote_addr=address,
        action=action,
        object_type=object_type,
        object_id=str(object_id)[:200],
        object_repr=str(object_repr)[:300],
        changes=_masked({name: [_plain(b), _plain(a)] for name, (b, a) in (changes or {}).items()}),
    )


@contextmanager
def audit_muted(*models: type[Model]):
    """No entry for rows of `models` in this block: a service that replaces a collection of children in
    bulk records it once on the parent instead (`audit_children`)."""
    reset = _muted.set(_muted.get() | set(models))
    try:
        yield
    finally:
        _muted.reset(reset)


def audit_children(*, parent: Model, name: str, before: list, after: list) -> None:
    """A collection of the parent's children (a channel's endpoints, an attribute's values) replaced:
    one update entry of the parent, {name: [before, after]}."""
    before, after = _plain(before), _plain(after)
    if before == after:
        return
    spec = AUDITED[type(parent)]
    _write(spec, parent, AuditAction.UPDATE, {name: [before, after]}, tenant_id=_tenant_of(spec, parent))


# --- what is audited --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Audited:
    object_type: str
    tenant_id: Callable[[Model], int | None]
    object_id: Callable[[Model], str] = lambda obj: str(obj.pk)
    ignore: frozenset[str] = frozenset()  # fields whose changes are not configuration (timestamps, leases)
    also: frozenset[str] = frozenset()  # fields no form edits (editable=False) that are configuration all the same
    fields: tuple = field(default=(), compare=False)  # filled by audit_register


def _via_channel(obj) -> int | None:
    return obj.channel.tenant_id if obj.channel_id else None


def _option_id(option: OptionValue) -> str:
    scope = f"@{option.channel.channel_id}" if option.channel_id else ""
    return f"{option.section}/{option.name}{scope}"


def _own_tenant(obj) -> int | None:
    return obj.tenant_id


def _no_tenant(obj) -> None:
    return None


AUDITED: dict[type[Model], Audited] = {}


def audit_register() -> None:
    """Connect the signals for the configuration models (AppConfig.ready)."""
    user_model = get_user_model()
    specs = {
        Tenant: Audited("tenant", lambda tenant: tenant.pk),
        user_model: Audited("user", _no_tenant, ignore=frozenset({"last_login", "date_joined"})),
        Group: Audited("group", _no_tenant),
        Membership: Audited("membership", _own_tenant),
        # The secret a rotation keeps valid for a while, and until when (masked as every secret; the time shown).
        Channel: Audited("channel", _own_tenant, object_id=lambda channel: channel.channel_id,
                         also=frozenset({"previous_secret", "previous_secret_until"})),
        Endpoint: Audited("endpoint", _via_channel),
        OptionValue: Audited("option", _via_channel, object_id=_option_id),
        BusinessAttribute: Audited("business-attribute", _no_tenant),
        BusinessAttributeValue: Audited("business-attribute-value", _no_tenant),
        StandardResponse: Audited("standard-response", _own_tenant),
        StandardResponseCategory: Audited("standard-response-category", _own_tenant),
        Attachment: Audited("attachment", _own_tenant),
        Campaign: Audited("campaign", _via_channel),
        Queue: Audited("queue", _own_tenant, object_id=lambda queue: queue.key),
        Segment: Audited("segment", _own_tenant),
    }
    for model, spec in specs.items():
        fields = tuple(
            f for f in model._meta.concrete_fields
            if not f.primary_key and (f.editable or f.name in spec.also) and f.name not in spec.ignore
        )
        AUDITED[model] = Audited(spec.object_type, spec.tenant_id, spec.object_id, spec.ignore, spec.also, fields)
        uid = f"audit-{model._meta.label_lower}"
        pre_save.connect(_before_save, sender=model, dispatch_uid=uid)
        post_save.connect(_after_save, sender=model, dispatch_uid=uid)
        post_delete.connect(_after_delete, sender=model, dispatch_uid=uid)
    for through, names in _m2m_fields(user_model).items():
        m2m_changed.connect(_m2m_changed, sender=through, dispatch_uid=f"audit-{through._meta.label_lower}")
        M2M_NAMES[through] = names


# through model -> (the accessor on the forward side, the accessor on the reverse side)
M2M_NAMES: dict[type[Model], tuple[str, str]] = {}


def _m2m_fields(user_model) -> dict:
    return {
        user_model.groups.through: ("groups", "user_set"),
        user_model.user_permissions.through: ("user_permissions", "user_set"),
        Group.permissions.through: ("permissions", "group_set"),
        StandardResponse.attachments.through: ("attachments", "standard_responses"),
    }


def _tenant_of(spec: Audited, instance) -> int | None:
    try:
        return spec.tenant_id(instance)
    except ObjectDoesNotExist:
        return None


def _write(spec: Audited, instance, action: str, changes: dict, *, tenant_id=None, object_id=None) -> None:
    try:
        object_id = spec.object_id(instance) if object_id is None else object_id
    except ObjectDoesNotExist:
        object_id = str(instance.pk)
    audit_record(
        action=action,
        object_type=spec.object_type,
        object_id=object_id,
        object_repr=_repr(instance),
        changes=changes,
        tenant_id=tenant_id,
    )


def _repr(instance) -> str:
    try:
        return str(instance)
    except ObjectDoesNotExist:
        return ""


def _is_password_rehash(instance, update_fields) -> bool:
    """Django re-hashes a password on login when the hasher changed: not a change of password."""
    return update_fields is not None and set(update_fields) == {"password"} and getattr(
        instance, "_password", None
    ) is None


def _chosen_fields(spec: Audited, update_fields) -> tuple:
    if update_fields is None:
        return spec.fields
    names = set(update_fields)
    return tuple(f for f in spec.fields if f.name in names or f.attname in names)


def _before_save(sender, instance, raw=False, update_fields=None, **kwargs):
    spec = AUDITED[sender]
    fields = _chosen_fields(spec, update_fields)
    instance._audit_skip = (
        raw or not fields or sender in _muted.get()
        or (sender is get_user_model() and _is_password_rehash(instance, update_fields))
    )
    if instance._audit_skip:
        return
    if instance.pk is None or (instance._state.adding and sender._meta.pk.has_default()):
        instance._audit_before = None
        return
    instance._audit_before = (
        sender._base_manager.filter(pk=instance.pk).values(*(f.attname for f in fields)).first()
    )


def _after_save(sender, instance, created, raw=False, update_fields=None, **kwargs):
    spec = AUDITED[sender]
    skip = instance.__dict__.pop("_audit_skip", raw)
    before = instance.__dict__.pop("_audit_before", None)
    if skip:
        return
    fields = _chosen_fields(spec, update_fields)
    after = {f.name: _plain(f.value_from_object(instance)) for f in fields}
    if created or before is None:
        changes = {name: [None, value] for name, value in after.items() if value not in (None, "", [], {})}
        action = AuditAction.CREATE
    else:
        changes = {}
        for f in fields:
            old = _plain(before.get(f.attname))
            if old != after[f.name]:
                changes[f.name] = [old, after[f.name]]
        if not changes:
            return
        action = AuditAction.STATE_CHANGE if sender is Campaign and "state" in changes else AuditAction.UPDATE
    _write(spec, instance, action, changes, tenant_id=_tenant_of(spec, instance))


def _after_delete(sender, instance, **kwargs):
    if sender in _muted.get():
        return
    spec = AUDITED[sender]
    changes = {f.name: [_plain(f.value_from_object(instance)), None] for f in spec.fields}
    changes = {name: values for name, values in changes.items() if values[0] not in (None, "", [], {})}
    tenant_id = _tenant_of(spec, instance)
    if sender is Tenant:
        # The tenant's entries lose it (AuditEntry.tenant is SET_NULL), those written during this delete too.
        AuditEntry.objects.filter(tenant_id=instance.pk).update(tenant=None)
        tenant_id = None
    _write(spec, instance, AuditAction.DELETE, changes, tenant_id=tenant_id)
    if sender is get_user_model():
        # The user's entries keep the username and lose the user (SET_NULL), those written during this delete too.
        AuditEntry.objects.filter(user_id=instance.pk).update(user=None)


def _labels(manager) -> list[str]:
    if manager.model is Permission:
        return sorted(f"{app}.{codename}" for app, codename in manager.values_list(
            "content_type__app_label", "codename"))
    if manager.model is get_user_model():
        return sorted(manager.values_list("username", flat=True))
    return sorted(str(obj) for obj in manager.all())


def _m2m_changed(sender, instance, action, reverse, model, pk_set, **kwargs):
    if action not in {"pre_add", "pre_remove", "pre_clear", "post_add", "post_remove", "post_clear"}:
        return
    spec = AUDITED.get(type(instance))
    if spec is None:
        return
    forward, backward = M2M_NAMES[sender]
    accessor = backward if reverse else forward
    manager = getattr(instance, accessor)
    key = f"_audit_m2m_{accessor}"
    if action.startswith("pre_"):
        instance.__dict__[key] = _labels(manager)
        return
    before = instance.__dict__.pop(key, None)
    after = _labels(manager)
    if before is None or before == after:
        return
    name = forward if not reverse else model._meta.verbose_name_plural.replace(" ", "_")
    _write(spec, instance, AuditAction.UPDATE, {name: [before, after]}, tenant_id=_tenant_of(spec, instance))
