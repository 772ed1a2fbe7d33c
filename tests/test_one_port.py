"""One port for everything (issue 23; docs/OPERATIONS.md, "Processes"): `make run`'s web server (scripts/serve.sh,
started here as tests/nodes.py starts it, on the test database) answers the API and the agents' event stream on
PORT. A client that follows no redirect (python `requests`) reads its events there with its token and resumes with
`Last-Event-ID`; open streams take no thread, so more of them than the server has threads leave the API answering;
a stop ends the open streams at once (their clients reconnect elsewhere) instead of after the graceful timeout;
gunicorn's limits on the request line and the header fields still hold."""

import http.client
import json
import queue
import threading
import time

import pytest
import requests

from channels_app.services import agent_events
from tests.conftest import _client_for, member
from tests.nodes import Node, ensure_default_groups
from tests.workers import poll_until, require_shared_database

EVENTS = "/api/agents/me/events/"
THREADS = 2  # WEB_CONCURRENCY=1 x WEB_THREADS=2: the threads that serve the API


class EventReader:
    """An EventSource of the test over python `requests`: the parsed events in a queue, read in a thread."""

    def __init__(self, url: str, token: str, last_event_id: int | None = None):
        headers = {"Authorization": f"Token {token}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.response = requests.get(url + EVENTS, headers=headers, stream=True, timeout=30, allow_redirects=False)
        self.events: queue.Queue = queue.Queue()
        self.ended = threading.Event()
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        event: dict = {}
        try:
            for line in self.response.iter_lines(chunk_size=None, decode_unicode=True):
                if not line:
                    if "data" in event:
                        self.events.put({**event, "data": json.loads(event["data"])})
                    event = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    event[name] = value
        except Exception as error:  # noqa: BLE001 - a broken stream is what the test looks at
            self.error = error
        finally:
            self.ended.set()

    def next(self, timeout: float = 15.0) -> dict:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no event within {timeout} s") from None

    def close(self) -> None:
        self.response.close()


def _event(user_id: int, text: str) -> int:
    """An event for the user, numbered; its id."""
    agent_events.events_add(user_ids=[user_id], kind="message", data={"text": text})
    agent_events.agent_events_sequence()
    return agent_events.agent_events_last(user_id=user_id)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_api_and_the_event_stream_share_make_runs_port(tenant, tmp_path):
    require_shared_database()
    ensure_default_groups()
    agent = member("one-port-agent", "WhatsApp agent", tenants=[tenant], is_staff=False)
    token = _client_for(agent)._credentials["HTTP_AUTHORIZATION"].removeprefix("Token ")
    node = Node("one-port", tmp_path / "node", env={"WEB_THREADS": str(THREADS)})
    streams: list[EventReader] = []
    try:
        node.start()
        poll_until(node.answers, 90, "make run's web server to answer")  # the workers are not needed here
        seen = _event(agent.pk, "seen before the reconnect")

        # when the agent's client reconnects on PORT with its token and the id of the last event it saw
        stream = EventReader(node.url, token, last_event_id=seen - 1)
        streams.append(stream)

        # then the stream is there (no redirect to follow), from the event after that id on
        assert stream.response.status_code == 200, stream.response.text
        assert stream.response.headers["Content-Type"] == "text/event-stream"
        first = stream.next()
        assert (int(first["id"]), first["event"], first["data"]) == (seen, "message",
                                                                      {"text": "seen before the reconnect"})
        later = _event(agent.pk, "written while streaming")
        second = stream.next()
        assert (int(second["id"]), second["data"]["text"]) == (later, "written while streaming")

        # given more open streams than the server has threads
        for _ in range(THREADS * 4):
            streams.append(EventReader(node.url, token))
        assert {reader.response.status_code for reader in streams} == {200}

        # then /healthz and the API still answer, at once
        started = time.monotonic()
        assert requests.get(f"{node.url}/healthz", timeout=10).status_code == 200
        me = requests.get(f"{node.url}/api/agents/me/", headers={"Authorization": f"Token {token}"}, timeout=10)
        assert me.status_code == 200, me.text
        assert time.monotonic() - started < 5
        # and every stream gets what is written next
        last = _event(agent.pk, "to every stream")
        for reader in streams:
            assert int(reader.next()["id"]) == last

        # gunicorn's limits hold on the one port: a request line over 4094 bytes, more than 100 header fields
        connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
        connection.request("GET", "/api/channels/?" + "q=x&" * 1100)
        assert connection.getresponse().status == 414
        connection.close()
        connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
        connection.request("GET", "/api/channels/", headers={f"X-Padding-{n}": "x" for n in range(150)})
        assert connection.getresponse().status == 431
        connection.close()

        # when the server stops (SIGTERM, as Ctrl-C or a rolling restart), the open streams end at once: complete
        # responses (no broken chunk), so their clients reconnect elsewhere with Last-Event-ID
        node.process.terminate()
        stopping = time.monotonic()
        poll_until(lambda: all(reader.ended.is_set() for reader in streams), 15, "the open streams to end")
        assert time.monotonic() - stopping < 15  # gunicorn's graceful timeout is 30 s
        assert [reader.error for reader in streams] == [None] * len(streams)
        node.process.wait(timeout=30)
    finally:
        for reader in streams:
            reader.close()
        node.stop()
