"""The OpenID Connect client (Authlib): the authorization code flow with PKCE (S256), state and nonce kept in
the session, the ID token's signature (the provider's published keys), issuer (`OIDC_ISSUER`), audience
(`OIDC_CLIENT_ID`), nonce and expiry checked before anything is written.

The provider is configured by the operator, not supplied by a user, so its requests (discovery, keys, token)
go straight from Authlib's `requests` session with `OIDC_TIMEOUT`, not through `channels_app/outbound.py`
(whose rules keep webhooks, which staff users configure, off private addresses): a provider on the internal
network or on 127.0.0.1 is allowed."""

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.django_client import DjangoIntegration, DjangoOAuth2App
from django.conf import settings
from joserfc.errors import JoseError

# What a refused answer of the provider raises: a bad token (signature, issuer, audience, nonce, expiry), an
# error the provider reported, an answer that is not what the protocol says, or a provider out of reach.
REFUSALS = (OAuthError, JoseError, requests.RequestException, ValueError, KeyError, TypeError)

_clients: dict[tuple, DjangoOAuth2App] = {}


def oidc_configured() -> bool:
    return bool(settings.OIDC_ISSUER and settings.OIDC_CLIENT_ID and settings.OIDC_CLIENT_SECRET)


def oidc_client() -> DjangoOAuth2App:
    """The client for the configured provider (its discovery document and keys are kept by the client)."""
    key = (settings.OIDC_ISSUER, settings.OIDC_CLIENT_ID, settings.OIDC_CLIENT_SECRET, settings.OIDC_SCOPES)
    client = _clients.get(key)
    if client is None:
        client = DjangoOAuth2App(
            DjangoIntegration("oidc"), name="oidc",
            client_id=settings.OIDC_CLIENT_ID, client_secret=settings.OIDC_CLIENT_SECRET,
            server_metadata_url=f"{settings.OIDC_ISSUER}/.well-known/openid-configuration",
            client_kwargs={"scope": settings.OIDC_SCOPES, "code_challenge_method": "S256",
                           "default_timeout": settings.OIDC_TIMEOUT},
        )
        _clients.clear()
        _clients[key] = client
    return client


def oidc_authorize_redirect(request, *, redirect_uri: str):
    """The redirect to the provider's authorization endpoint (state, nonce and the PKCE verifier stay in the
    session)."""
    return oidc_client().authorize_redirect(request, redirect_uri)


def oidc_claims(request) -> dict:
    """The validated ID token's claims of the provider's answer to this callback. Raises one of `REFUSALS`."""
    client = oidc_client()
    metadata = client.load_server_metadata()
    if metadata.get("issuer", "").rstrip("/") != settings.OIDC_ISSUER:
        raise ValueError(f"the provider's discovery document names the issuer {metadata.get('issuer')!r}, "
                         f"not {settings.OIDC_ISSUER!r}")
    token = client.authorize_access_token(
        request, claims_options={"iss": {"essential": True, "values": [settings.OIDC_ISSUER]},
                                 "aud": {"essential": True, "values": [settings.OIDC_CLIENT_ID]}},
    )
    claims = token.get("userinfo")
    if not claims:
        raise ValueError("the provider's answer holds no ID token")
    return dict(claims)
