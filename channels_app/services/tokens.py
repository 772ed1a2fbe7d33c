"""API tokens that end (API.md, "Tokens end").

A token is DRF's `authtoken` row, one per user. It is refused once older
than `TOKEN_TTL`; `POST /api/auth/token/` then replaces it. `DELETE
/api/auth/token/` revokes it, and a change of the user's password revokes the
user's tokens, whatever changed it (the admin's password form, the API,
`manage.py changepassword`): `password_change_watch` compares the stored hash
on every save of a user, in this one place."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from channels_app.audit import audit_record
from channels_app.models import AuditAction


def token_expired(token: Token, *, now=None) -> bool:
    return token.created <= (now or timezone.now()) - settings.TOKEN_TTL


def token_obtain(*, user) -> Token:
    """The user's token: the current one while it lasts, a new one once it has expired."""
    expired = [token.pk for token in Token.objects.filter(user=user) if token_expired(token)]
    if expired:
        Token.objects.filter(pk__in=expired).delete()
    token, _ = Token.objects.get_or_create(user=user)  # two clients at once: one creates, both get it
    return token


def _revoke(user, reason: str) -> int:
    revoked, _ = Token.objects.filter(user=user).delete()
    if revoked:
        audit_record(
            action=AuditAction.REVOKE,
            object_type="token",
            object_id=user.pk,
            object_repr=f"token of {user.get_username()}",
            changes={"reason": [None, reason]},
        )
    return revoked


@transaction.atomic
def token_revoke(*, user) -> int:
    """Sign the user out of the API: their token no longer authenticates. Returns how many were revoked."""
    return _revoke(user, "revoked by its holder")


# --- a change of password revokes ----------------------------------------------------------------------------------


def _password_before_save(sender, instance, raw=False, update_fields=None, **kwargs):
    instance._password_changed = False
    if raw or instance.pk is None or instance._state.adding:
        return
    if update_fields is not None and "password" not in update_fields:
        return  # e.g. the last_login of every login
    if update_fields is not None and set(update_fields) == {"password"} and instance._password is None:
        return  # Django re-hashing the same password on login (a new hasher): not a change
    stored = sender._base_manager.filter(pk=instance.pk).values_list("password", flat=True).first()
    instance._password_changed = stored is not None and stored != instance.password


def _password_after_save(sender, instance, raw=False, **kwargs):
    if instance.__dict__.pop("_password_changed", False):
        _revoke(instance, "password changed")


def password_change_watch() -> None:
    """Connect the signals (AppConfig.ready)."""
    from django.db.models.signals import post_save, pre_save

    user_model = get_user_model()
    pre_save.connect(_password_before_save, sender=user_model, dispatch_uid="tokens-password-before")
    post_save.connect(_password_after_save, sender=user_model, dispatch_uid="tokens-password-after")
