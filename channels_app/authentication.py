"""API authentication: DRF's tokens, which end (API.md, "Tokens end"), with
what a request needs of its caller kept for a few seconds.

A token's request used to read the token with its user, the user's two sets
of permissions and their tenants: four queries of every agent message and
ESP call. `CredentialsCache` keeps the user as last read (permissions and
tenant ids included) for `AUTH_CACHE_SECONDS` in each process. Any change in
this process (a token, a user, a group, a permission, a membership) empties
it at once; a change made in another process takes effect here within
`AUTH_CACHE_SECONDS` (5 by default; 0 turns the cache off). An expired
token is refused on every request, cached or not."""

import copy
import threading
import time

from django.conf import settings
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import APIException, AuthenticationFailed, NotAuthenticated

from channels_app.selectors import tenant_ids_for
from channels_app.services.tokens import token_expired

# Entries a process keeps at most (one per token in use); beyond it the cache starts again empty.
CREDENTIALS_CACHE_SIZE = 10_000


class CredentialsCache:
    def __init__(self):
        self._entries: dict[str, tuple[float, object, object]] = {}
        self._lock = threading.Lock()

    def get(self, key: str):
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        _expires, user, token = entry
        return copy.copy(user), token  # a request may set attributes on its user; the next gets a clean one

    def put(self, key: str, user, token) -> None:
        seconds = settings.AUTH_CACHE_SECONDS
        if seconds <= 0:
            return
        with self._lock:
            if len(self._entries) >= CREDENTIALS_CACHE_SIZE:
                self._entries = {}
            self._entries[key] = (time.monotonic() + seconds, user, token)

    def clear(self, *args, **kwargs) -> None:
        """Every entry (a signal receiver: any change to who may do what)."""
        with self._lock:
            self._entries = {}


credentials = CredentialsCache()


class ExpiringTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, refusing a token older than TOKEN_TTL with 401. `POST /api/auth/token/`
    with the password issues a new one."""

    def authenticate_credentials(self, key):
        cached = credentials.get(key)
        if cached is not None:
            user, token = cached
        else:
            user, token = super().authenticate_credentials(key)
            user.get_all_permissions()  # read now, kept with the user (Django's ModelBackend caches them on it)
            tenant_ids_for(user)
            credentials.put(key, copy.copy(user), token)  # this request's user is not the one kept
        if token_expired(token):
            raise AuthenticationFailed("Token has expired: ask for a new one (POST /api/auth/token/).")
        return user, token



_token_authentication = ExpiringTokenAuthentication()


def token_caller(request) -> tuple[object | None, APIException | None]:
    """A plain Django view's caller by its token, as DRF's ExpiringTokenAuthentication decides: (user, None),
    or (None, the refusal DRF answers: 401 with its words; its `WWW-Authenticate` is TOKEN_CHALLENGE)."""
    try:
        authenticated = _token_authentication.authenticate(request)
    except AuthenticationFailed as error:
        return None, error
    if authenticated is None:
        return None, NotAuthenticated()
    return authenticated[0], None


TOKEN_CHALLENGE = _token_authentication.authenticate_header(None)

def credentials_cache_watch() -> None:
    """Connect the signals that empty the cache (AppConfig.ready)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission
    from django.db.models.signals import m2m_changed, post_delete, post_save
    from rest_framework.authtoken.models import Token

    from channels_app.models import Membership

    user_model = get_user_model()
    for model in (Token, user_model, Group, Permission, Membership):
        post_save.connect(credentials.clear, sender=model, dispatch_uid=f"credentials-save-{model.__name__}")
        post_delete.connect(credentials.clear, sender=model, dispatch_uid=f"credentials-delete-{model.__name__}")
    for through in (user_model.groups.through, user_model.user_permissions.through, Group.permissions.through):
        m2m_changed.connect(credentials.clear, sender=through, dispatch_uid=f"credentials-m2m-{through.__name__}")
