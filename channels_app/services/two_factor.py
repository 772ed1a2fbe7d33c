"""The second factor at sign-in (API.md, "Sign-in"; README "Sign-in"): a TOTP authenticator and recovery codes
(django-otp's devices), asked of the members of `REQUIRE_2FA_GROUPS` (API.md's default: `Administrator`), of
superusers when `REQUIRE_2FA_SUPERUSERS` is true, and of any user who has enrolled an authenticator.

A TOTP code is six digits; a recovery code is eight letters and digits, each good once. Wrong codes are failed
logins for the login throttle (the sign-in views report them to django-axes); django-otp also slows down one
device's guesses by itself (`OTP_TOTP_THROTTLE_FACTOR`)."""

import math
import re

import django_otp
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from channels_app.audit import audit_record
from channels_app.errors import PermissionDenied
from channels_app.models import AuditAction

RECOVERY_CODE_COUNT = 10
TOTP_CODE = re.compile(r"\d{6}")
AUTHENTICATOR_NAME = "Authenticator"
RECOVERY_NAME = "Recovery codes"


def second_factor_required(*, user) -> bool:
    """Whether `user` gives a code after its password (or its single sign-on) at every sign-in."""
    if django_otp.user_has_device(user, confirmed=True):
        return True
    if user.is_superuser and settings.REQUIRE_2FA_SUPERUSERS:
        return True
    required = {name for name in settings.REQUIRE_2FA_GROUPS if name}
    return bool(required) and user.groups.filter(name__in=required).exists()


def second_factor_enrolled(*, user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def totp_enrolment_start(*, user) -> TOTPDevice:
    """A new, unconfirmed authenticator for `user` (its QR code is shown once); an earlier unconfirmed one is
    dropped, so reloading the page gives a fresh secret."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        return TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_NAME, confirmed=False)


def totp_enrolment_pending(*, user, device_id: int | None) -> TOTPDevice | None:
    """The enrolment `totp_enrolment_start` began for `user`, while it is not confirmed."""
    return TOTPDevice.objects.filter(pk=device_id or 0, user=user, confirmed=False).first()


def totp_enrolment_confirm(*, user, device_id: int, code: str) -> tuple[TOTPDevice, list[str]] | None:
    """The authenticator confirmed by its first code, with new recovery codes (replacing earlier ones), or None
    when the code is wrong (or the enrolment is not this user's)."""
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(pk=device_id, user=user, confirmed=False).first()
        if device is None or not TOTP_CODE.fullmatch(code.strip()) or not device.verify_token(code.strip()):
            return None
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()  # one authenticator at a time
        StaticDevice.objects.filter(user=user).delete()
        recovery = StaticDevice.objects.create(user=user, name=RECOVERY_NAME, confirmed=True)
        codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
        StaticToken.objects.bulk_create([StaticToken(device=recovery, token=code) for code in codes])
    return device, codes


def second_factor_wait(*, user, enrolment_id: int | None = None) -> int:
    """Seconds before `user`'s authenticator (or the one it is enrolling) takes a code again: django-otp holds a
    device back after wrong codes (1 s, 2 s, 4 s... `OTP_TOTP_THROTTLE_FACTOR`). 0: it takes one now."""
    devices = TOTPDevice.objects.filter(user=user, confirmed=True)
    if enrolment_id:
        devices = TOTPDevice.objects.filter(user=user, pk=enrolment_id)
    wait = 0.0
    for device in devices:
        allowed, data = device.verify_is_allowed()
        if not allowed and data and data.get("locked_until"):
            wait = max(wait, (data["locked_until"] - timezone.now()).total_seconds())
    return math.ceil(wait)


def second_factor_check(*, user, code: str):
    """The device that accepts `code` (a TOTP code, or a recovery code, which is then used up), or None."""
    code = re.sub(r"[\s-]", "", code or "").lower()
    if not code:
        return None
    model = TOTPDevice if TOTP_CODE.fullmatch(code) else StaticDevice
    for device in model.objects.filter(user=user, confirmed=True):
        verified = django_otp.verify_token(user, device.persistent_id, code)
        if verified is not None:
            return verified
    return None


def second_factor_reset(*, user, reset_by) -> int:
    """Remove `user`'s authenticator and recovery codes (a lost phone): its next sign-in enrols a new
    authenticator if its groups require one. Superusers only; audited. Returns how many devices went."""
    if not reset_by.is_superuser:
        raise PermissionDenied("Only a superuser may reset another user's two-factor devices.")
    with transaction.atomic():
        names = sorted(device.name for device in django_otp.devices_for_user(user, confirmed=None))
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
        if names:
            audit_record(
                action=AuditAction.REVOKE, object_type="user", object_id=user.pk,
                object_repr=f"two-factor devices of {user.get_username()}",
                changes={"two_factor_devices": [names, []]},
            )
    return len(names)
