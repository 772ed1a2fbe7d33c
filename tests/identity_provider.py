"""An OpenID Connect provider of the suite on 127.0.0.1: oidc-provider-mock (a real provider built on Authlib's
server: discovery, keys, the authorization form, the token endpoint) in a thread of its own, with two additions:

* PKCE required: an authorization request without an S256 `code_challenge` is refused (400), and the token
  endpoint refuses a code whose `code_verifier` does not match its challenge;
* `provider.tamper = "signature" | "audience" | "issuer" | "nonce" | "expired"`: the next ID tokens come back
  signed by another key, or with that claim wrong, to see the server refuse them.

    with IdentityProvider() as provider:
        provider.set_user("ann@example.com", {"email": "ann@example.com", "groups": ["dms-admins"]})
        settings.OIDC_ISSUER = provider.url
"""

import base64
import hashlib
import threading
import time
from urllib.parse import parse_qs, urlsplit

import flask
import oidc_provider_mock
import requests
import werkzeug.serving
from joserfc import jwt
from joserfc.jwk import RSAKey

TAMPERS = ("signature", "audience", "issuer", "nonce", "expired")


class IdentityProvider:
    def __init__(self):
        self.app = oidc_provider_mock.app(require_nonce=True, issue_refresh_token=False)
        self.tamper: str | None = None
        self.challenges: dict[str, str] = {}  # authorization code -> its PKCE challenge
        self.token_requests: list[dict] = []
        self.app.before_request(self._before)
        self.app.after_request(self._after)
        self.server = werkzeug.serving.make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def set_user(self, sub: str, claims: dict) -> None:
        requests.put(f"{self.url}/users/{sub}", json=claims, timeout=10).raise_for_status()

    def authorize(self, authorize_url: str, sub: str) -> str:
        """What a user's browser does at the provider: sign in as `sub`; returns the redirect back (the URL
        with the code and the state)."""
        answer = requests.post(authorize_url, data={"sub": sub}, allow_redirects=False, timeout=10)
        assert answer.status_code == 302, (answer.status_code, answer.text[:300])
        return answer.headers["Location"]

    # --- the additions -------------------------------------------------------------------------------------

    def _before(self):
        request = flask.request
        if request.path == "/oauth2/authorize" and request.method == "GET":
            if request.args.get("code_challenge_method") != "S256" or not request.args.get("code_challenge"):
                return "PKCE (S256) is required", 400
        if request.path == "/oauth2/token":
            self.token_requests.append(request.form.to_dict())
            challenge = self.challenges.pop(request.form.get("code", ""), None)
            verifier = request.form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if challenge is None or digest != challenge:
                return flask.jsonify(error="invalid_grant", error_description="PKCE verification failed"), 400
        return None

    def _after(self, response):
        request = flask.request
        if request.path == "/oauth2/authorize" and request.method == "POST" and response.status_code == 302:
            code = parse_qs(urlsplit(response.headers["Location"]).query).get("code", [""])[0]
            self.challenges[code] = request.args.get("code_challenge", "")
        if request.path == "/oauth2/token" and response.status_code == 200 and self.tamper:
            body = response.get_json()
            body["id_token"] = self._tampered(body["id_token"])
            response.set_data(flask.json.dumps(body))
        return response

    def _tampered(self, id_token: str) -> str:
        key = RSAKey.import_key(flask.g.oidc_provider_mock_storage.jwk.as_dict(is_private=True))
        token = jwt.decode(id_token, key)
        claims, header = dict(token.claims), dict(token.header)
        if self.tamper == "signature":
            # another key under the same key id: the provider's published key does not verify it
            key = RSAKey.generate_key(2048, parameters={"kid": header["kid"]} if header.get("kid") else None)
        elif self.tamper == "audience":
            claims["aud"] = "another-client"
        elif self.tamper == "issuer":
            claims["iss"] = "http://127.0.0.1:1/another-issuer"
        elif self.tamper == "nonce":
            claims["nonce"] = "not-the-nonce-sent"
        elif self.tamper == "expired":
            claims["iat"], claims["exp"] = int(time.time()) - 7200, int(time.time()) - 3600
        return jwt.encode(header, claims, key)
