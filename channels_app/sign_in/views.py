"""The sign-in views, reusable by any login page (the admin's uses them through `DmsAdminSite.login`; the
workspace's login, when it exists, reuses `SignInView` with its own template and form).

A sign-in has up to two steps. The first proves who the user is: its password (`SignInView`) or the identity
provider (`oidc_start`, `oidc_callback`). When the user's groups require a second factor
(`channels_app.services.two_factor.second_factor_required`), the first step does NOT sign the user in: the
session only remembers the pending user for `PENDING_SECONDS`, and the user is signed in by
`second_factor_view` (a TOTP or recovery code) or, on its first sign-in, by `enrol_view` (a QR code to scan,
then its first code; the recovery codes are shown once). Until then no page, API call or media file treats the
session as signed in. A wrong code is a failed login for django-axes: the address is refused (429) after
`LOGIN_FAILURE_LIMIT` failures, passwords and codes counted together."""

import logging
import time
from base64 import b32encode
from urllib.parse import urlencode

import segno
from axes.handlers.proxy import AxesProxyHandler
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth import login as auth_login
from django.contrib.auth.signals import user_login_failed
from django.contrib.auth.views import LoginView
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login

from channels_app.services.single_sign_on import SignInRefused, single_sign_on_user
from channels_app.services.two_factor import (
    TOTP_CODE,
    second_factor_check,
    second_factor_enrolled,
    second_factor_required,
    second_factor_wait,
    totp_enrolment_confirm,
    totp_enrolment_pending,
    totp_enrolment_start,
)
from channels_app.services.users import user_sign_in_refusal
from channels_app.sign_in.oidc import REFUSALS, oidc_authorize_redirect, oidc_claims, oidc_configured

logger = logging.getLogger(__name__)

PENDING = "sign_in_pending"
PENDING_SECONDS = 600  # to give the code after the password
OIDC_NEXT = "sign_in_oidc_next"
LOGIN_PAGE = "sign_in_login_page"  # the login page a sign-in started from: where a refusal goes back to
SESSION_BACKEND = "channels_app.login_throttle.PasswordBackend"  # reads every session's user back
DEFAULT_NEXT = "admin:index"
LOGIN = "admin:login"


def _safe_next(request, url: str | None) -> str:
    if url and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()},
                                               require_https=request.is_secure()):
        return url
    return reverse(DEFAULT_NEXT)


def sign_in_context(request) -> dict:
    """What a login page shows beside its password form: the single sign-on button, and whether passwords are
    for the break-glass superusers only."""
    if not oidc_configured():
        return {}
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    query = urlencode({"next": next_url, "login": request.path} if next_url else {"login": request.path})
    url = f"{reverse('sign-in-oidc')}?{query}"
    return {"oidc": {"name": settings.OIDC_PROVIDER_NAME, "url": url}, "oidc_only": settings.OIDC_ONLY}


def begin_session(request, user, *, backend: str, next_url: str):
    """The first step succeeded: sign the user in, or, when its groups require a second factor, remember it
    as pending and ask for the code (or the enrolment)."""
    if not second_factor_required(user=user):
        auth_login(request, user, backend=backend)
        return HttpResponseRedirect(next_url)
    request.session.cycle_key()  # a new session id from the moment the password was right
    request.session[PENDING] = {"user": user.pk, "backend": backend, "next": next_url, "at": time.time()}
    if request.resolver_match and request.resolver_match.url_name != "sign-in-oidc-callback":
        request.session[LOGIN_PAGE] = request.path
    step = "sign-in-code" if second_factor_enrolled(user=user) else "sign-in-enrol"
    return HttpResponseRedirect(reverse(step))


def _pending_user(request):
    pending = request.session.get(PENDING)
    if not pending or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        return None, None
    user = get_user_model().objects.filter(pk=pending["user"], is_active=True).first()
    return user, pending


def _finish(request, user, pending: dict, device):
    """The second factor is right: the user is signed in, its session verified by `device`."""
    request.session.pop(PENDING, None)
    auth_login(request, user, backend=pending["backend"])
    otp_login(request, device)
    return HttpResponseRedirect(_safe_next(request, pending["next"]))


def _login_page(request) -> str:
    page = request.session.get(LOGIN_PAGE)
    if page and url_has_allowed_host_and_scheme(page, allowed_hosts={request.get_host()}):
        return page
    return reverse(LOGIN)


def _back_to_login(request, message: str):
    messages.error(request, message)
    request.session.pop(PENDING, None)
    return HttpResponseRedirect(_login_page(request))


def _context(request, **context) -> dict:
    return {**admin.site.each_context(request), **context}


def _code_refused(request, user) -> None:
    """A wrong code: a failed login for the throttle (django-axes), as a wrong password is."""
    user_login_failed.send(sender=__name__, credentials={"username": user.get_username()}, request=request)


def _throttled(request, user) -> HttpResponse | None:
    credentials = {"username": user.get_username()}
    if AxesProxyHandler.is_allowed(request, credentials):
        return None
    request.axes_locked_out = True  # AxesMiddleware answers with the lockout response (429)
    request.axes_credentials = credentials
    return HttpResponse(status=429)


class SignInView(LoginView):
    """Django's login view whose success goes through `begin_session` (the second factor), with the single
    sign-on button in its context. Reuse: `SignInView.as_view(template_name=..., authentication_form=...)`."""

    def get_default_redirect_url(self):
        return self.next_page or reverse(DEFAULT_NEXT)  # not Django's /accounts/profile/

    def form_valid(self, form):
        user = form.get_user()
        return begin_session(self.request, user, backend=user.backend, next_url=self.get_success_url())

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **sign_in_context(self.request)}


class CodeForm(forms.Form):
    code = forms.CharField(
        max_length=32, label="Code",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True, "inputmode": "text"}),
        help_text="The six digits your authenticator app shows now, or one of your recovery codes.",
    )


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def second_factor_view(request):
    user, pending = _pending_user(request)
    if user is None:
        return _back_to_login(request, "Your sign-in took too long or was not started: sign in again.")
    if not second_factor_enrolled(user=user):
        return HttpResponseRedirect(reverse("sign-in-enrol"))
    form = CodeForm(request.POST or None)
    if request.method == "POST":
        throttled = _throttled(request, user)
        if throttled:
            return throttled
        wait = second_factor_wait(user=user)
        if wait and form.is_valid() and TOTP_CODE.fullmatch(form.cleaned_data["code"].strip()):
            form.add_error("code", _wait_message(wait))  # not checked, so not counted
        elif form.is_valid():
            device = second_factor_check(user=user, code=form.cleaned_data["code"])
            if device is not None:
                return _finish(request, user, pending, device)
            _code_refused(request, user)
            form.add_error("code", "This code is not right (or was used already). Try the code shown now.")
            if getattr(request, "axes_locked_out", False):
                return HttpResponse(status=429)
    return render(request, "sign_in/code.html", _context(request, form=form, title="Two-factor authentication",
                                                         username=user.get_username()))


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def enrol_view(request):
    user, pending = _pending_user(request)
    if user is None:
        return _back_to_login(request, "Your sign-in took too long or was not started: sign in again.")
    if second_factor_enrolled(user=user):
        return HttpResponseRedirect(reverse("sign-in-code"))
    form = CodeForm(request.POST or None)
    form.fields["code"].help_text = "The six digits your authenticator app shows for this account."
    if request.method == "POST":
        throttled = _throttled(request, user)
        if throttled:
            return throttled
        wait = second_factor_wait(user=user, enrolment_id=request.session.get("sign_in_enrolment"))
        if wait and form.is_valid():
            form.add_error("code", _wait_message(wait))  # not checked, so not counted
        elif form.is_valid():
            confirmed = totp_enrolment_confirm(user=user, device_id=request.session.get("sign_in_enrolment", 0),
                                               code=form.cleaned_data["code"])
            if confirmed is not None:
                device, codes = confirmed
                request.session.pop("sign_in_enrolment", None)
                next_url = _safe_next(request, pending["next"])
                _finish(request, user, pending, device)
                return render(request, "sign_in/recovery_codes.html", _context(
                    request, title="Your recovery codes", codes=codes, next_url=next_url))
            _code_refused(request, user)
            form.add_error("code", "This code is not right: scan the QR code again and give the code shown now.")
            if getattr(request, "axes_locked_out", False):
                return HttpResponse(status=429)
    device = totp_enrolment_pending(user=user, device_id=request.session.get("sign_in_enrolment"))
    if device is None:
        device = totp_enrolment_start(user=user)
        request.session["sign_in_enrolment"] = device.pk
    qr = segno.make(device.config_url, error="m")
    return render(request, "sign_in/enrol.html", _context(
        request, form=form, title="Set up two-factor authentication", username=user.get_username(),
        qr_svg=qr.svg_data_uri(scale=5, border=2, light="white"), secret=_base32(device.bin_key),
    ))


def _wait_message(seconds: int) -> str:
    return (f"Too many wrong codes in a row: wait {seconds} second{'s' if seconds != 1 else ''}, then give the "
            "code your app shows then.")


def _base32(key: bytes) -> str:
    text = b32encode(key).decode().rstrip("=")
    return " ".join(text[i:i + 4] for i in range(0, len(text), 4))


@never_cache
@require_http_methods(["GET"])
def oidc_start(request):
    """To the identity provider (authorization code flow with PKCE)."""
    if not oidc_configured():
        raise Http404("Single sign-on is not configured.")
    request.session[OIDC_NEXT] = _safe_next(request, request.GET.get("next"))
    request.session[LOGIN_PAGE] = request.GET.get("login") or reverse(LOGIN)
    try:
        return oidc_authorize_redirect(request, redirect_uri=request.build_absolute_uri(
            reverse("sign-in-oidc-callback")))
    except REFUSALS as error:
        logger.warning("single sign-on: the provider at %s cannot be reached: %s", settings.OIDC_ISSUER, error)
        return _back_to_login(request, f"{settings.OIDC_PROVIDER_NAME} cannot be reached now: try again later.")


@never_cache
@require_http_methods(["GET"])
def oidc_callback(request):
    """Back from the identity provider: the ID token checked, the user found or created with its groups, then
    the second factor if its groups require one."""
    if not oidc_configured():
        raise Http404("Single sign-on is not configured.")
    name = settings.OIDC_PROVIDER_NAME
    try:
        claims = oidc_claims(request)
    except REFUSALS as error:
        logger.warning("single sign-on refused: %s", error)
        return _back_to_login(request, f"Sign-in with {name} was refused: {_reason(error)}")
    try:
        user = single_sign_on_user(claims=claims)
    except SignInRefused as refusal:
        return _back_to_login(request, f"Sign-in with {name} was refused: {refusal}")
    if not user.is_active:
        return _back_to_login(request, f"Sign-in with {name} was refused: this account is disabled here.")
    refusal = user_sign_in_refusal(user=user)
    if refusal:
        return _back_to_login(request, refusal.replace("The password is right", f"{name} knows you"))
    next_url = request.session.pop(OIDC_NEXT, None) or reverse(DEFAULT_NEXT)
    return begin_session(request, user, backend=SESSION_BACKEND, next_url=next_url)


def _reason(error: Exception) -> str:
    text = getattr(error, "description", None) or str(error) or type(error).__name__
    return f"{text.rstrip('.')}."
