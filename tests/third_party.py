"""The third party of the suite and of the benchmarks: a real HTTP/1.1 receiver on 127.0.0.1.

    receiver = Receiver(secret, keep_requests=True)   # an asyncio server (keep-alive) in a thread of its own
    channel.webhook_url = receiver.url
    receiver.plan.extend([503, "hang:11", "drop"])    # the next answers; then 200 {"messageId": "ext-<id>"}
    request = receiver.wait_for(1)[0]                 # Received: path, headers, body, at (with keep_requests)
    receiver.arrived(message_ids)                     # how many of them came, counted by webhook-id
    receiver.stop()

Every POST is noted by its `webhook-id` (our message id): the first arrival
(`clock()`), how many POSTs carried it, with `note_recipients` the customer it
was for (the body's channel.to.id), and whether its X-Hub-Signature (HMAC-SHA1
with `secret`) was wrong. The suite keeps each request as well
(`keep_requests`); the benchmarks do not, so that the receiver costs them as
little as it can.

A planned answer is an HTTP status, "hang:<seconds>" (answer 200, late) or
"drop" (close the connection without answering).
"""

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http import HTTPStatus


@dataclass
class Received:
    path: str
    headers: dict  # as sent: names in their own case
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when it arrived

    def json(self):
        return json.loads(self.body)


class Receiver:
    def __init__(self, secret: str = "", *, clock=time.time, note_recipients: bool = False,
                 keep_requests: bool = False):
        self.secret, self.clock, self.note_recipients = secret.encode(), clock, note_recipients
        self.keep_requests = keep_requests
        self.lock = threading.Lock()
        self.plan: deque = deque()
        self.received: list[Received] = []  # with keep_requests
        self.reset()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait()

    def reset(self) -> None:
        with self.lock:
            self.arrivals: dict[str, float] = {}  # webhook-id -> first arrival
            self.counts: Counter = Counter()  # webhook-id -> POSTs
            self.recipients: dict[str, str] = {}  # webhook-id -> channel.to.id (with note_recipients)
            self.requests = 0
            self.bad_signatures = 0
            self.received.clear()

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=1024))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        try:
            self.loop.run_forever()
        finally:
            server.close()
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(server.wait_closed(), *tasks, return_exceptions=True))
            self.loop.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = self.clock()
                headers = {}
                lines = head.decode("latin-1").split("\r\n")
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                webhook_id = headers.get("webhook-id", "")
                expected = "sha1=" + hmac.new(self.secret, body, hashlib.sha1).hexdigest()
                recipient = _recipient_of(body) if self.note_recipients else None
                with self.lock:
                    self.requests += 1
                    self.counts[webhook_id] += 1
                    self.arrivals.setdefault(webhook_id, arrived)
                    if recipient is not None:
                        self.recipients[webhook_id] = recipient
                    self.bad_signatures += not hmac.compare_digest(expected, headers.get("x-hub-signature", ""))
                    if self.keep_requests:
                        self.received.append(_received(lines, body))
                    answer = self.plan.popleft() if self.plan else 200
                if answer == "drop":
                    return
                if isinstance(answer, str) and answer.startswith("hang:"):
                    await asyncio.sleep(float(answer.split(":", 1)[1]))
                    answer = 200
                writer.write(_answer(answer, webhook_id or _message_id_of(body)))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        """The requests kept, once there are `count` of them (keep_requests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} request(s), got {len(self.received)}")

    def distinct(self) -> int:
        with self.lock:
            return len(self.arrivals)

    def arrived(self, ids) -> int:
        """How many of `ids` (webhook-ids) have arrived."""
        with self.lock:
            return sum(1 for webhook_id in ids if webhook_id in self.arrivals)

    def duplicate_posts(self) -> int:
        """POSTs that repeated a webhook-id already received."""
        with self.lock:
            return self.requests - len(self.arrivals)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _answer(status: int, message_id: str) -> bytes:
    if 200 <= status < 300:
        payload = json.dumps({"messageId": f"ext-{message_id}"}).encode()
    else:
        payload = json.dumps({"error": status}).encode()
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (status, reason.encode(), len(payload), payload))


def _received(lines: list[str], body: bytes) -> Received:
    """The request as sent: its path and its headers with their names' own case."""
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip()] = value.strip()
    return Received(lines[0].split(" ")[1], headers, body)


def _message_id_of(body: bytes) -> str:
    try:
        return str(json.loads(body)["channel"]["messageId"])
    except (ValueError, KeyError, TypeError):
        return "unknown"


def _recipient_of(body: bytes) -> str:
    try:
        return str(json.loads(body)["channel"]["to"]["id"])
    except (ValueError, KeyError, TypeError):
        return ""
