"""A real HTTP receiver on 127.0.0.1 standing in for a third-party messaging system."""

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when it arrived

    def json(self):
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers each POST with the next planned answer (default: 200 with a messageId).

    A planned answer is an HTTP status, "hang:<seconds>" (answer late) or "drop" (close the connection)."""

    server: ThreadingHTTPServer
    plan: deque = field(default_factory=deque)
    received: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/webhook"

    def wait_for(self, count: int, timeout: float = 15.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} request(s), got {len(self.received)}")


def start_receiver() -> Receiver:
    receiver: Receiver | None = None

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with receiver.lock:
                receiver.received.append(Received(self.path, dict(self.headers), body))
                answer = receiver.plan.popleft() if receiver.plan else 200
            if answer == "drop":
                self.connection.close()
                return
            if isinstance(answer, str) and answer.startswith("hang:"):
                time.sleep(float(answer.split(":", 1)[1]))
                answer = 200
            try:
                message_id = json.loads(body)["channel"]["messageId"]
            except (ValueError, KeyError, TypeError):
                message_id = "unknown"
            payload = json.dumps({"messageId": f"ext-{message_id}"} if 200 <= answer < 300 else {"error": answer})
            try:
                self.send_response(answer)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload.encode())
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender stopped waiting (its timeout) before a late answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver
