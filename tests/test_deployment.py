"""Deployment: what production needs beyond the features.

* `manage.py check --deploy` is clean with production settings (DEBUG=false,
  SECRET_KEY, ALLOWED_HOSTS), and production refuses to start without a key;
* a real gunicorn with DEBUG=false refuses oversized bodies (413 before they
  are read), oversized headers and request lines (gunicorn's own 4xx) on the
  API, ESP, nexus, the token endpoint and the admin's uploads: 4xx, never 5xx;
* secrets never reach the logs (gunicorn's and a Celery worker's, at DEBUG
  level) or the pages: the channel secret, API tokens, passwords, the
  SECRET_KEY and webhook signatures, over a flow with a failing webhook
  delivery, an inbound request with a bad signature, a failed login, the API's
  channel pages and the admin's;
* the token endpoint is rate limited (429 with Retry-After).

`python -m bench.deployment` runs this file and prints its figures
(check_deploy_issues, oversized_5xx, secrets_in_logs, token_rate_limited).
"""

import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from rest_framework.authtoken.models import Token

from channels_app.models import Channel
from tests.workers import GunicornProcess, WorkerProcess, poll_until, require_shared_database

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SECRET_KEY = secrets.token_urlsafe(50)
# The production settings of the README ("Production").
PRODUCTION = {"DEBUG": "false", "SECRET_KEY": SECRET_KEY, "ALLOWED_HOSTS": "127.0.0.1,dms.example.com",
              "HTTPS_ONLY": "true"}
BODY_LIMIT, UPLOAD_LIMIT = 1024 * 1024, 2 * 1024 * 1024  # the server's, smaller than the defaults to be quick
TOKEN_RATE = 5  # a minute

# Figures for bench/deployment.py, which sets DEPLOYMENT_FIGURES to a file to write them to.
FIGURES: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def _write_figures():
    yield
    if path := os.environ.get("DEPLOYMENT_FIGURES"):
        Path(path).write_text(json.dumps(FIGURES))


def figure(name: str, value: int, *, add: bool = False) -> None:
    FIGURES[name] = FIGURES.get(name, 0) + value if add else value


# --- check --deploy ------------------------------------------------------------------------------------------------


def test_check_deploy_is_clean_with_production_settings():
    env = {**os.environ, **PRODUCTION}

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )

    issues = re.search(r"identified (\d+) issues?", result.stdout + result.stderr)
    figure("check_deploy_issues", int(issues[1]) if issues else 0 if result.returncode == 0 else -1)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_a_secret_key_the_installation_generates_its_own(tmp_path):
    # given production settings without SECRET_KEY, on a fresh installation
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update({**PRODUCTION, "VAR_DIR": str(tmp_path)})
    del env["SECRET_KEY"]

    # when the server checks itself
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )

    # then it runs with a key of its own (never a public default), kept readable by its owner only
    assert result.returncode == 0, result.stdout + result.stderr
    key_file = tmp_path / "secret_key"
    assert len(key_file.read_text().strip()) >= 50 and (key_file.stat().st_mode & 0o077) == 0


# --- request size, in process --------------------------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000, UPLOAD_MAX_SIZE=2000)
def test_a_body_over_the_limit_is_413_before_the_view_reads_it(staff_api):
    json_body = staff_api.generic("POST", "/api/tenants/", b" " * 1001, content_type="application/json")
    upload = staff_api.generic("POST", "/api/attachments/", b"-" * 2001, content_type="multipart/form-data; boundary=x")
    small_upload = staff_api.generic("POST", "/api/attachments/", b"-" * 1500,
                                     content_type="multipart/form-data; boundary=x")

    assert (json_body.status_code, upload.status_code) == (413, 413)
    assert "1001 bytes" in json_body.json()["detail"]
    assert small_upload.status_code == 400  # under the upload limit: read, and refused as a broken form


# --- a real gunicorn with production settings -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    require_shared_database()
    running = GunicornProcess(tmp_path_factory.mktemp("gunicorn") / "gunicorn.log", env={
        **PRODUCTION,
        "DATA_UPLOAD_MAX_MEMORY_SIZE": str(BODY_LIMIT), "UPLOAD_MAX_SIZE": str(UPLOAD_LIMIT),
        "TOKEN_THROTTLE_RATE": f"{TOKEN_RATE}/min", "CACHE_URL": "locmemcache://",  # one process: its own cache
        "LOG_LEVEL": "DEBUG",  # the most a misconfigured server would log
    })
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def send(server, method: str, path: str, body: bytes = b"", headers: dict | None = None, *,
         declared_length: int | None = None) -> tuple[int, dict, bytes]:
    """One request as a client behind the TLS proxy sends it; `declared_length` announces a longer body than
    is sent (the server must answer without waiting for the rest)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        all_headers = {"X-Forwarded-Proto": "https", "Content-Length": str(declared_length or len(body)),
                       **(headers or {})}
        for name, value in all_headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        try:
            conn.send(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed without reading it all
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


OVERSIZED = [
    pytest.param("/api/channels/", "application/json", BODY_LIMIT + 1, id="api-json"),
    pytest.param("/api/auth/token/", "application/json", BODY_LIMIT + 1, id="token-endpoint"),
    pytest.param("/esp", "application/json", BODY_LIMIT + 1, id="esp"),
    pytest.param("/nexus/v3/channels/channel-whatsapp-REAL/messages", "application/json", BODY_LIMIT + 1, id="nexus"),
    pytest.param("/api/attachments/", "multipart/form-data; boundary=b", UPLOAD_LIMIT + 1, id="api-upload"),
    pytest.param("/admin/channels_app/campaign/add/", "multipart/form-data; boundary=b", UPLOAD_LIMIT + 1,
                 id="admin-upload"),
    pytest.param("/admin/login/", "application/x-www-form-urlencoded", BODY_LIMIT + 1, id="admin-form"),
]


@pytest.mark.parametrize(("path", "content_type", "size"), OVERSIZED)
def test_oversized_bodies_are_refused_with_4xx_never_5xx(server, path, content_type, size):
    sent_whole = send(server, "POST", path, b"x" * size, {"Content-Type": content_type})
    announced = send(server, "POST", path, b"x" * 1000, {"Content-Type": content_type}, declared_length=size)
    huge = send(server, "POST", path, b"x" * 1000, {"Content-Type": content_type}, declared_length=10**12)

    statuses = [sent_whole[0], announced[0], huge[0]]
    figure("oversized_requests", len(statuses), add=True)
    figure("oversized_5xx", sum(status >= 500 for status in statuses), add=True)
    assert statuses == [413, 413, 413]


@pytest.mark.parametrize(
    ("what", "path", "headers"),
    [
        pytest.param("a 20 kB header", "/api/channels/", {"X-Padding": "x" * 20_000}, id="huge-header"),
        pytest.param("200 headers", "/api/channels/", {f"X-Padding-{n}": "x" for n in range(200)}, id="many-headers"),
        pytest.param("a 10 kB URL", "/api/channels/?" + "q=x&" * 2500, {}, id="huge-request-line"),
    ],
)
def test_oversized_headers_are_refused_by_gunicorn_with_4xx(server, what, path, headers):
    status, _, _ = send(server, "GET", path, headers=headers)

    figure("oversized_requests", 1, add=True)
    figure("oversized_5xx", int(status >= 500), add=True)
    assert 400 <= status < 500, what


# --- secrets ----------------------------------------------------------------------------------------------------


class Browser:
    """Cookies and the CSRF token of the admin, over `send`."""

    def __init__(self, server):
        self.server, self.cookies = server, {}

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, bytes]:
        headers = {"Cookie": "; ".join(f"{name}={value}" for name, value in self.cookies.items()),
                   "Origin": f"https://127.0.0.1:{self.server.port}"}
        body = b""
        if form is not None:
            form = {**form, "csrfmiddlewaretoken": self.cookies.get("csrftoken", "")}
            body = "&".join(f"{name}={quote(str(value))}" for name, value in form.items()).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        status, response_headers, content = send(self.server, method, path, body, headers)
        for name, value in response_headers.items():
            if name.lower() == "set-cookie":
                cookie_name, cookie_value = value.split(";", 1)[0].split("=", 1)
                self.cookies[cookie_name] = cookie_value
        return status, content


def sign(secret: str, body: bytes) -> dict:
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
            "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()}


def signature_value(header: str) -> str:
    """The MAC of `sha256=<hex>`, `sha1=<hex>` or `v1,<base64>`."""
    value = header.split(",", 1)[1] if header.startswith("v1,") else header.split("=", 1)[1]
    assert len(value) >= 20, header
    return value


@pytest.fixture
def worker(tmp_path):
    running = WorkerProcess(tmp_path / "celery.log", env={**PRODUCTION, "LOG_LEVEL": "DEBUG"})
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_secrets_are_never_logged_nor_shown(server, worker, receiver, tenant, settings):
    # given a staff user (hashed as the server hashes), a webhook channel whose receiver fails, and its response
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    password, channel_secret = "staff-" + secrets.token_urlsafe(12), "chan-" + secrets.token_urlsafe(16)
    wrong_password = "wrong-" + secrets.token_urlsafe(12)
    get_user_model().objects.create_user("operator", password=password, is_staff=True, is_superuser=True)
    receiver.plan.extend([500] * 10)
    json_headers = {"Content-Type": "application/json"}

    def api(method, path, payload=None, expect=200):
        status, _, content = send(server, method, path, json.dumps(payload).encode() if payload else b"",
                                  {**json_headers, "Authorization": f"Token {token}"})
        assert status == expect, content[:500]
        return content

    status, _, content = send(server, "POST", "/api/auth/token/",
                              json.dumps({"username": "operator", "password": password}).encode(), json_headers)
    assert status == 200
    token = json.loads(content)["token"]
    send(server, "POST", "/api/auth/token/", json.dumps({"username": "operator", "password": wrong_password}).encode(),
         json_headers)
    api("POST", "/api/channels/", {
        "channel_id": "channel-secret-test", "name": "Secret test", "tenant": tenant.id, "media_type": "whatsapp",
        "transport": "webhook", "business_id": "19251112222", "webhook_url": receiver.url, "secret": channel_secret,
        "endpoints": ["1:session-chat"], "inbound_route_by_call": "1:session-chat",
    }, expect=201)
    response = json.loads((FIXTURES / "invite_to_chat_standard_response.json").read_text())
    api("POST", "/api/standard-responses/", response, expect=201)

    # when: an invitation whose webhook delivery fails, inbound requests signed right and wrong, the pages
    invite = json.loads((FIXTURES / "invite_to_chat_request.json").read_text())
    invite["Parameters"]["_umsChannel"] = "channel-secret-test"
    api("POST", "/esp", invite)
    delivered = receiver.wait_for(1, timeout=30)
    poll_until(lambda: "500" in worker.log() or "retry" in worker.log().lower(), 30, "the worker to log the failure")
    inbound = json.dumps({"messages": [{
        "channel": {"messageId": "in-1", "from": {"id": "15556667777"}, "to": {"id": "19251112222"}},
        "type": "Text", "text": "Hello",
    }]}).encode()
    nexus = "/nexus/v3/channels/channel-secret-test/messages"
    good, bad = sign(channel_secret, inbound), sign("not-the-secret", inbound)
    assert send(server, "POST", nexus, inbound, {**json_headers, **bad})[0] == 401
    assert send(server, "POST", nexus, inbound, {**json_headers, **good})[0] == 200
    pages = [api("GET", "/api/channels/"), api("GET", "/api/channels/channel-secret-test/")]
    browser = Browser(server)
    browser.request("GET", "/admin/login/")
    login = "/admin/login/?next=/admin/"
    assert browser.request("POST", login, {"username": "operator", "password": wrong_password})[0] == 200
    assert browser.request("POST", login, {"username": "operator", "password": password})[0] == 302
    pk = Channel.objects.get(channel_id="channel-secret-test").pk
    for path in ("/admin/channels_app/channel/", f"/admin/channels_app/channel/{pk}/change/"):
        status, content = browser.request("GET", path)
        assert status == 200, content[:300]
        pages.append(content)

    # then none of the secrets is in a log or on a page
    webhook_signatures = [delivered[0].headers[name] for name in
                          ("X-Hub-Signature", "X-Hub-Signature-256", "webhook-signature")]
    found_secrets = {
        "channel secret": channel_secret, "API token": token, "password": password,
        "wrong password": wrong_password, "SECRET_KEY": SECRET_KEY,
        **{f"webhook signature {n}": signature_value(header) for n, header in enumerate(webhook_signatures)},
        **{f"{kind} inbound {name}": signature_value(header)
           for kind, signed in (("good", good), ("bad", bad)) for name, header in signed.items()},
    }
    logs = server.log() + worker.log()
    in_logs = sorted(name for name, value in found_secrets.items() if value in logs)
    on_pages = sorted(name for name, value in found_secrets.items() if any(value.encode() in page for page in pages))
    figure("secrets_checked", len(found_secrets))
    figure("secrets_in_logs", len(in_logs))
    figure("secrets_shown", len(on_pages))
    assert Token.objects.filter(key=token).exists()
    assert "Unauthorized: /nexus" in server.log() or " 401 " in server.log()  # the logs were written at all
    assert in_logs == [], [logs[max(0, logs.find(found_secrets[name]) - 300):][:600] for name in in_logs]
    assert on_pages == []


# --- rate limit (last: the attempts of the tests above from this address count too) ---------------------------------


def test_the_token_endpoint_is_rate_limited_whatever_address_the_client_claims(server):
    credentials = json.dumps({"username": "nobody", "password": "wrong-password"}).encode()

    answers = [send(server, "POST", "/api/auth/token/", credentials,
                    {"Content-Type": "application/json", "X-Forwarded-For": f"192.0.2.{attempt}"})
               for attempt in range(TOKEN_RATE + 1)]

    statuses = [status for status, _, _ in answers]
    first_refused = statuses.index(429) if 429 in statuses else None
    figure("token_rate_limited", int(first_refused is not None))
    assert first_refused is not None, statuses
    assert set(statuses[:first_refused]) <= {401} and set(statuses[first_refused:]) == {429}
    assert int(answers[first_refused][1]["Retry-After"]) > 0
