"""API authentication: DRF's tokens, which end (API.md, "Tokens end")."""

from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from channels_app.services.tokens import token_expired


class ExpiringTokenAuthentication(TokenAuthentication):
    """DRF's token authentication (one query: the token with its user), refusing a token older than
    TOKEN_TTL with 401. `POST /api/auth/token/` with the password issues a new one."""

    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if token_expired(token):
            raise AuthenticationFailed("Token has expired: ask for a new one (POST /api/auth/token/).")
        return user, token
