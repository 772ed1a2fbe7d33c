"""A stand-in for Meta's Graph API (WhatsApp Cloud API) on 127.0.0.1, for the
tests, the benchmarks (`bench/` imports `tests.graph_stand_in`) and the demo
(`seed_demo --graph-stand-in`; `python -m tests.graph_stand_in` runs one).

It answers as the Graph API does:
* `POST /v21.0/{phone_number_id}/messages` -> `{"messaging_product", "contacts": [{"input", "wa_id"}],
  "messages": [{"id": "wamid..."}]}`; with `throttle_every=n` every n-th send is answered
  `130429` (rate limit hit), with `refuse_token` every call is `401` / code 190;
* `POST /v21.0/{waba_id}/message_templates` -> `{"id", "status": "PENDING", "category"}`, and
  `GET` lists them (`{"data": [...], "paging": {...}}`); `approve(name)` changes a status (and a reason);
* `GET /v21.0/{media_id}` -> `{"url", "mime_type", "sha256", "file_size", "id"}` and the URL serves the
  bytes given to `add_media` (bearer token required), or names the `url` given to it (a file elsewhere);
and, when `webhook_url` and `app_secret` are set, sends `sent` and `delivered` statuses of accepted
messages back, signed (`X-Hub-Signature-256`), batched every `status_interval` seconds.

Every request is recorded (`requests`, with its monotonic time)."""

import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "v21.0"


@dataclass
class Recorded:
    at: float
    method: str
    path: str
    body: dict
    answer_status: int


@dataclass
class GraphStandIn:
    token: str = "stand-in-token"
    throttle_every: int = 0  # every n-th send answered 130429 (0: never)
    refuse_token: bool = False
    outside_window: set = field(default_factory=set)  # recipients answered 131047
    webhook_url: str = ""
    app_secret: str = ""
    phone_number_id: str = "106540352242922"
    display_phone_number: str = "15550783881"
    status_interval: float = 0.2
    port: int = 0  # 0: any free port
    auto_approve: bool = False  # templates are APPROVED as soon as they are created (the demo)
    requests: list = field(default_factory=list)
    templates: dict = field(default_factory=dict)  # name -> {"id", "name", "language", "status", ...}
    media: dict = field(default_factory=dict)  # media id -> (bytes, mime type)
    media_urls: dict = field(default_factory=dict)  # media id -> where its bytes are (default: served here)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._sends = itertools.count(1)
        self._ids = itertools.count(1)
        self._pending_statuses: list = []
        self._stop = threading.Event()
        self.server = None

    # --- running -----------------------------------------------------------------------------------------------

    def start(self) -> "GraphStandIn":
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                stand_in._handle(self, "GET")

            def do_POST(self):
                stand_in._handle(self, "POST")

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # many workers' threads connect at once: a short backlog drops SYNs
            daemon_threads = True

        self.server = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._send_statuses_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def base(self) -> str:
        """GRAPH_API_BASE for the server under test."""
        return f"{self.origin}/{VERSION}"

    # --- helpers for tests ---------------------------------------------------------------------------------------

    def sends(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.path.endswith("/messages")]

    def accepted_sends(self) -> list[Recorded]:
        return [r for r in self.sends() if r.answer_status == 200]

    def approve(self, name: str, status: str = "APPROVED", reason: str = "") -> None:
        """Meta's verdict on a template (REJECTED with a `reason` such as INCORRECT_CATEGORY), listed from then on."""
        with self._lock:
            self.templates[name]["status"] = status
            self.templates[name]["rejected_reason"] = reason or "NONE"

    def add_media(self, media_id: str, content: bytes, mime_type: str, url: str | None = None) -> None:
        self.media[media_id] = (content, mime_type)
        if url:
            self.media_urls[media_id] = url

    def sign(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.app_secret.encode(), body, hashlib.sha256).hexdigest()

    def statuses_body(self, statuses: list[dict]) -> dict:
        return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
            "value": {"messaging_product": "whatsapp",
                      "metadata": {"display_phone_number": self.display_phone_number,
                                   "phone_number_id": self.phone_number_id},
                      "statuses": statuses},
            "field": "messages"}]}]}

    # --- the API -------------------------------------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        path = request.path.split("?")[0]
        status, answer, content_type = self._answer(method, path, body, request.headers.get("Authorization", ""))
        with self._lock:
            self.requests.append(Recorded(time.monotonic(), method, path, body, status))
        data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    @staticmethod
    def _error(status: int, code: int, message: str, subcode: int | None = None) -> tuple[int, dict, str]:
        error = {"message": message, "type": "OAuthException", "code": code,
                 "error_data": {"messaging_product": "whatsapp", "details": message}, "fbtrace_id": "AbCdEf123"}
        if subcode:
            error["error_subcode"] = subcode
        return status, {"error": error}, "application/json"

    def _answer(self, method: str, path: str, body: dict, authorization: str):
        if path.startswith("/media-files/"):
            media_id = path.rsplit("/", 1)[-1]
            if authorization != f"Bearer {self.token}" or media_id not in self.media:
                return 404, b"not found", "text/plain"
            content, mime_type = self.media[media_id]
            return 200, content, mime_type
        if self.refuse_token or authorization != f"Bearer {self.token}":
            return self._error(401, 190, "Error validating access token: Session has expired.", 463)
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == VERSION and parts[2] == "messages" and method == "POST":
            return self._message(body)
        if len(parts) == 3 and parts[0] == VERSION and parts[2] == "message_templates":
            return self._template(method, body)
        if len(parts) == 2 and parts[0] == VERSION and method == "GET" and parts[1] in self.media:
            content, mime_type = self.media[parts[1]]
            url = self.media_urls.get(parts[1], f"{self.origin}/media-files/{parts[1]}")
            return 200, {"url": url, "mime_type": mime_type,
                         "sha256": hashlib.sha256(content).hexdigest(), "file_size": len(content),
                         "id": parts[1], "messaging_product": "whatsapp"}, "application/json"
        return self._error(400, 100, f"Unsupported {method} request to {path}.")

    def _message(self, body: dict):
        number = next(self._sends)
        if body.get("messaging_product") != "whatsapp" or not body.get("to") or not body.get("type"):
            return self._error(400, 100, "Invalid parameter")
        if self.throttle_every and number % self.throttle_every == 0:
            return self._error(400, 130429, "Rate limit hit")
        if body["to"] in self.outside_window:
            return self._error(400, 131047, "Re-engagement message")
        wamid = "wamid." + base64.b64encode(f"stand-in-{next(self._ids)}".encode()).decode().rstrip("=")
        if self.webhook_url and self.app_secret:
            with self._lock:
                self._pending_statuses.append((wamid, body["to"]))
        return 200, {"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                     "messages": [{"id": wamid}]}, "application/json"

    def _template(self, method: str, body: dict):
        if method == "GET":
            with self._lock:
                data = [dict(item) for item in self.templates.values()]
            return 200, {"data": data, "paging": {"cursors": {"before": "MAZDZD", "after": "MjQZD"}}}, \
                "application/json"
        if not body.get("name") or not body.get("components"):
            return self._error(400, 100, "Invalid parameter")
        template_id = str(594425479261596 + len(self.templates))
        with self._lock:
            self.templates[body["name"]] = {"name": body["name"], "language": body.get("language", "en"),
                                            "status": "APPROVED" if self.auto_approve else "PENDING",
                                            "category": body.get("category", "UTILITY"),
                                            "id": template_id, "components": body["components"]}
        return 200, {"id": template_id, "status": "PENDING", "category": body.get("category", "UTILITY")}, \
            "application/json"

    # --- status webhooks back to the server ----------------------------------------------------------------------

    def _send_statuses_forever(self) -> None:
        while not self._stop.wait(self.status_interval):
            with self._lock:
                pending, self._pending_statuses = self._pending_statuses, []
            if not pending:
                continue
            now = str(int(time.time()))
            statuses = [{"id": wamid, "status": status, "timestamp": now, "recipient_id": to}
                        for status in ("sent", "delivered") for wamid, to in pending]
            self.post_webhook(self.statuses_body(statuses))

    def post_webhook(self, body: dict) -> int:
        data = json.dumps(body).encode()
        request = urllib.request.Request(self.webhook_url, data=data, method="POST", headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": self.sign(data)})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except OSError:
            return 0


if __name__ == "__main__":  # a stand-in for the demo: python -m tests.graph_stand_in
    import os

    running = GraphStandIn(webhook_url=os.environ.get("STAND_IN_WEBHOOK_URL", ""),
                           app_secret=os.environ.get("STAND_IN_APP_SECRET", ""),
                           port=int(os.environ.get("STAND_IN_PORT", "0")), auto_approve=True).start()
    print(f"GRAPH_API_BASE={running.base}", flush=True)
    threading.Event().wait()
