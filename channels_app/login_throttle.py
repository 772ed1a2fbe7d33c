"""The login throttle (API.md, "Tokens end"): django-axes counts failed logins per client address.

Both doors that check a password call `django.contrib.auth.authenticate()`:
the admin's login form and `POST /api/auth/token/`. After
`LOGIN_FAILURE_LIMIT` failures from one address, that address is refused for
`LOGIN_COOLOFF_MINUTES`, even with the right password: the admin answers
429 (this module's `lockout_response`), the token endpoint 429 as well (it
reads `axes_locked_out` from the request it passed to `authenticate`)."""

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.http import HttpResponse

from channels_app.client_address import client_ip


class LoginThrottleBackend(AxesStandaloneBackend):
    """axes' backend, for logins that come with a request. A call without one
    (Django's test client `login()`, a script) has no client to throttle:
    axes would raise; here it is left to the next backend."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class PasswordBackend(ModelBackend):
    """Django's username-and-password check. With `OIDC_ONLY` true, only superusers (the break-glass
    accounts) sign in with a password; everyone else signs in through the identity provider. A refused
    password counts as a failed login, like a wrong one. Sessions (of a password or a single sign-on) are
    read back through this backend (`get_user`), unchanged."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None and settings.OIDC_ONLY and not user.is_superuser:
            return None
        return user


def client_ip_for_axes(request) -> str | None:
    return client_ip(request) or request.META.get("REMOTE_ADDR")


def lockout_response(request, original_response=None, credentials=None):
    """The answer to a locked-out login. An API view that already answered 429 itself keeps its own
    (JSON) answer; the admin's login form gets a plain 429."""
    if original_response is not None and original_response.status_code == 429:
        return original_response
    response = HttpResponse(
        "Too many failed logins from your address: try again later.", status=429, content_type="text/plain"
    )
    cool_off = get_cool_off(request)
    if cool_off:
        response["Retry-After"] = str(max(1, int(cool_off.total_seconds())))
    return response
