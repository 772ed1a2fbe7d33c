"""Meta's Graph API over HTTP (pure network, no database): every request goes
through the outbound address rules (channels_app/outbound.py), over this
thread's kept-alive connection to the checked address, as the webhook
transport does. `GRAPH_API_BASE` (default https://graph.facebook.com/v21.0)
points it at the Graph API or at a stand-in (tests/graph_stand_in.py).

Errors come back as Meta writes them:
`{"error": {"message", "type", "code", "error_subcode", "error_data": {"details"}, "fbtrace_id"}}`."""

import http.client
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from django.conf import settings

from channels_app.outbound import BlockedAddress, resolve_allowed
from channels_app.transports.webhook import _connection, _forget  # the same per-thread pool of checked connections

GRAPH_TIMEOUT_SECONDS = 10.0
EXCERPT_BYTES = 500


def graph_base() -> str:
    return getattr(settings, "GRAPH_API_BASE", "https://graph.facebook.com/v21.0").rstrip("/")


@dataclass(frozen=True)
class GraphAnswer:
    """What the Graph API answered; `status` None when no answer came (`network_error` says why)."""

    status: int | None
    body: dict = field(default_factory=dict)
    excerpt: str = ""
    latency_ms: float = 0.0
    network_error: str = ""
    blocked: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def error(self) -> dict:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return error if isinstance(error, dict) else {}

    @property
    def error_code(self) -> int | None:
        code = self.error.get("code")
        return code if isinstance(code, int) else None

    def error_text(self) -> str:
        if self.network_error:
            return self.network_error
        error = self.error
        if not error:
            return f"HTTP {self.status}"
        details = (error.get("error_data") or {}).get("details") if isinstance(error.get("error_data"), dict) else ""
        text = f"({error.get('code')}) {error.get('message', '')}"
        return f"{text}: {details}" if details else text


def _split(url: str) -> tuple[str, str, int, str]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname or "", port, target


def _open(method: str, url: str, *, token: str, body: dict | None):
    """(response, endpoint) or raises BlockedAddress / OSError / HTTPException / ValueError."""
    scheme, host, port, target = _split(url)
    address = resolve_allowed(host, port)
    endpoint = (scheme, host, port, address)
    headers = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        headers["Content-Type"] = "application/json"
    connection = _connection(*endpoint)
    try:
        connection.request(method, target, body=data, headers=headers)
        return connection.getresponse(), endpoint
    except BaseException:
        _forget(*endpoint)
        raise


def graph_request(method: str, path_or_url: str, *, token: str, body: dict | None = None,
                  query: dict | None = None) -> GraphAnswer:
    """One Graph API call: `path_or_url` is a path under GRAPH_API_BASE (`/123/messages`) or a full URL."""
    url = path_or_url if "://" in path_or_url else f"{graph_base()}/{path_or_url.lstrip('/')}"
    if query:
        url += ("&" if "?" in url else "?") + urlencode(query)
    started = time.perf_counter()
    try:
        response, endpoint = _open(method, url, token=token, body=body)
        data = response.read()
        if response.will_close:
            _forget(*endpoint)
    except BlockedAddress as refusal:
        return GraphAnswer(None, network_error=str(refusal)[:500], blocked=True)
    except (OSError, http.client.HTTPException, ValueError, UnicodeError) as error:
        latency = (time.perf_counter() - started) * 1000
        return GraphAnswer(None, network_error=f"{type(error).__name__}: {error}"[:500], latency_ms=latency)
    latency = (time.perf_counter() - started) * 1000
    try:
        parsed = json.loads(data) if data else {}
    except (ValueError, RecursionError):
        parsed = {}
    return GraphAnswer(response.status, parsed if isinstance(parsed, dict) else {},
                       data[:EXCERPT_BYTES].decode("utf-8", "replace"), latency)
