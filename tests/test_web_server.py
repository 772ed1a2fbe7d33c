"""The web server's one application (project/asgi.py), in-process: the event stream's path goes to the ASGI side and
every other one to WSGI in the thread pool; gunicorn's limits on the request line and the header fields; the
response's header names as the application wrote them; gunicorn's access line; and a server's stop ends an open
stream with a complete response. tests/test_one_port.py shows the same through `make run`'s real server."""

import asyncio
import logging
import threading

import pytest

from project.asgi import EVENT_STREAM_PATH, Site


def _scope(path: str, *, query: bytes = b"", headers=()) -> dict:
    return {"type": "http", "http_version": "1.1", "method": "GET", "path": path, "raw_path": path.encode(),
            "query_string": query, "headers": list(headers), "client": ("127.0.0.1", 5000), "scheme": "http",
            "server": ("127.0.0.1", 8000), "root_path": ""}


def _wsgi(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-B3-TraceId", "a" * 32)])
    return [b"wsgi ", environ["PATH_INFO"].encode()]


async def _stream_like_django(scope, receive, send):
    """What Django's ASGI handler does with the event stream: the body read, the response started, events sent
    until the client goes (a disconnect read from `receive`), then it returns with the response unfinished."""
    assert (await receive())["type"] == "http.request"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"Content-Type", b"text/event-stream")]})
    await send({"type": "http.response.body", "body": b"retry: 2000\n\n", "more_body": True})
    assert (await receive())["type"] == "http.disconnect"


def _call(site: Site, scope: dict, *, while_open=None) -> list[dict]:
    """The messages the application sends for one request (a client that never goes away)."""
    sent: list[dict] = []

    async def run():
        requests = [{"type": "http.request", "body": b"", "more_body": False}]
        forever = asyncio.Event()

        async def receive():
            if requests:
                return requests.pop()
            await forever.wait()

        async def send(message):
            sent.append(message)

        call = asyncio.ensure_future(site(scope, receive, send))
        if while_open is not None:
            while not sent:
                await asyncio.sleep(0.01)
            while_open(site)
        await asyncio.wait_for(call, 10)

    asyncio.run(run())
    return sent


@pytest.fixture
def site() -> Site:
    return Site(events=_stream_like_django, wsgi=_wsgi, threads=2)


def test_every_path_but_the_event_stream_goes_to_wsgi_with_its_header_names_as_written(site, caplog):
    with caplog.at_level(logging.INFO, logger="gunicorn.access"):
        sent = _call(site, _scope("/api/channels/", query=b"page=2", headers=[(b"user-agent", b"curl/8")]))

    assert sent[0]["status"] == 200
    assert (b"X-B3-TraceId", b"a" * 32) in sent[0]["headers"]  # not lowercased (gunicorn sent them as written)
    assert b"".join(message.get("body", b"") for message in sent[1:]) == b"wsgi /api/channels/"
    # gunicorn's access line, with the atoms project/logs.py turns into JSON fields
    record = next(record for record in caplog.records if record.name == "gunicorn.access")
    assert '"GET /api/channels/?page=2 HTTP/1.1" 200 19 "-" "curl/8"' in record.getMessage()
    assert (record.args["m"], record.args["U"], record.args["s"], record.args["{x-b3-traceid}o"]) == (
        "GET", "/api/channels/", "200", "a" * 32)


@pytest.mark.parametrize(("scope", "status"), [
    pytest.param(_scope("/api/channels/", query=b"q=x&" * 1100), 414, id="request-line-over-4094-bytes"),
    pytest.param(_scope("/api/" + "a" * 4100), 414, id="path-over-4094-bytes"),
    pytest.param(_scope("/api/channels/", headers=[(f"x-padding-{n}".encode(), b"x") for n in range(101)]), 431,
                 id="over-100-header-fields"),
    pytest.param(_scope("/api/channels/", headers=[(b"x-padding", b"x" * 8200)]), 431, id="a-field-over-8190-bytes"),
    pytest.param(_scope(EVENT_STREAM_PATH, query=b"q=x&" * 1100), 414, id="the-stream-too"),
])
def test_gunicorns_limits_hold_before_any_application(site, scope, status):
    sent = _call(site, scope)

    assert sent[0]["status"] == status
    assert sent[-1].get("more_body", False) is False


def test_within_the_limits_a_request_is_served(site):
    headers = [(f"x-padding-{n}".encode(), b"x") for n in range(99)] + [(b"x-big", b"x" * 8000)]  # 100 fields

    assert _call(site, _scope("/api/" + "a" * 3900, headers=headers))[0]["status"] == 200


def test_a_servers_stop_ends_an_open_stream_with_a_complete_response(site):
    # given an open stream; when the server stops (project/server.py calls end_all)
    sent = _call(site, _scope(EVENT_STREAM_PATH), while_open=lambda running: running.streams.end_all())

    # then the stream's handler was told the client went, and the response was finished for it
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body",
                                                     "http.response.body"]
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert site.streams.endings == set()


def test_the_lifespan_is_answered_for_servers_that_ask():
    site = Site(events=_stream_like_django, wsgi=_wsgi, threads=1)
    messages = [{"type": "lifespan.shutdown"}, {"type": "lifespan.startup"}]
    sent = []

    async def receive():
        return messages.pop()

    async def send(message):
        sent.append(message["type"])

    asyncio.run(site({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def _call_with_body(site: Site, scope: dict, chunks: list[bytes]) -> list[dict]:
    """The messages sent for a request whose body comes in `chunks` (one http.request message each)."""
    sent: list[dict] = []
    messages = [{"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1}
                for n, chunk in enumerate(chunks)]

    async def run():
        async def receive():
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        await asyncio.wait_for(site(scope, receive, send), 10)

    asyncio.run(run())
    return sent


def _echo(environ, start_response):
    """The body's length as the application reads it, the thread it ran in, a header written in capitals."""
    body = environ["wsgi.input"].read()
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-Seen", str(len(body)))])
    return [body[:5], b"|", threading.current_thread().name.encode()]


def _body(sent: list[dict]) -> bytes:
    return b"".join(message.get("body", b"") for message in sent[1:])


@pytest.mark.parametrize(("headers", "reads"), [
    pytest.param([(b"content-length", b"11")], 1, id="small-body-whole-with-its-head"),
    pytest.param([(b"content-length", b"11")], 2, id="small-body-in-two-reads"),
    pytest.param([(b"content-length", str(70 * 1024).encode())], 1, id="over-LEAN_BODY_MAX"),
    pytest.param([(b"transfer-encoding", b"chunked")], 2, id="chunked"),
    pytest.param([(b"content-length", b"11"), (b"expect", b"100-continue")], 1, id="expect-100-continue"),
])
def test_a_request_body_reaches_the_application_whole_in_a_pool_thread(headers, reads):
    site = Site(events=_stream_like_django, wsgi=_echo, threads=2)
    length = int(dict(headers).get(b"content-length", b"11"))
    body = b"hello world" if length == 11 else b"x" * length
    scope = {**_scope("/nexus/v3/"), "method": "POST", "headers": headers}

    sent = _call_with_body(site, scope, [body] if reads == 1 else [body[: length // 2], body[length // 2:]])

    assert sent[0]["status"] == 201
    assert (b"X-Seen", str(length).encode()) in sent[0]["headers"]  # as written, the body read whole
    assert _body(sent).startswith(body[:5] + b"|WSGI")  # a2wsgi's pool, whichever path: never the event loop
    assert sent[-1].get("more_body", False) is False


def test_an_announced_body_over_the_limit_is_refused_without_waiting_for_it():
    """The application answers from the announced length (channels_app/request_limits.py) while the client has
    sent only the body's start: the rest is never waited for."""
    def refuse(environ, start_response):
        start_response("413 Request Entity Too Large", [("Content-Type", "text/plain")])
        return [b"too large"]

    site = Site(events=_stream_like_django, wsgi=refuse, threads=1)
    scope = {**_scope("/nexus/v3/"), "method": "POST", "headers": [(b"content-length", b"5000")]}
    messages = [{"type": "http.request", "body": b"x" * 1000, "more_body": True}]
    forever = asyncio.Event()
    sent = []

    async def run():
        async def receive():
            if messages:
                return messages.pop()
            await forever.wait()  # the rest of the body never comes

        async def send(message):
            sent.append(message)

        await asyncio.wait_for(site(scope, receive, send), 10)

    asyncio.run(run())
    assert (sent[0]["status"], _body(sent)) == (413, b"too large")


def test_a_client_gone_before_sending_its_body_runs_nothing():
    ran = []
    site = Site(events=_stream_like_django, wsgi=lambda environ, start_response: ran.append(1) or [], threads=1)
    sent = []

    async def run():
        async def receive():
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        await site({**_scope("/nexus/v3/"), "method": "POST", "headers": [(b"content-length", b"9")]}, receive, send)

    asyncio.run(run())
    assert (ran, sent) == ([], [])


def test_a_streaming_response_is_sent_chunk_by_chunk_from_its_thread_and_closed_there():
    closed_in = []

    class Stream:
        streaming = True

        def __iter__(self):
            yield b"one "
            yield b"two"

        def close(self):
            closed_in.append(threading.current_thread().name)

    def application(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/csv")])
        write(b"written ")  # WSGI's legacy write(): before the iterable's chunks
        return Stream()

    sent = _call(Site(events=_stream_like_django, wsgi=application, threads=1), _scope("/export/"))

    assert sent[0]["status"] == 200
    assert [message.get("body") for message in sent[1:]] == [b"written ", b"one ", b"two", b""]
    assert closed_in and closed_in[0].startswith("WSGI")  # Django closes the request's connection in its thread


def test_a_generator_application_starts_its_response_on_its_first_step():
    def application(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"late"

    sent = _call(Site(events=_stream_like_django, wsgi=application, threads=1), _scope("/gen/"))

    assert (sent[0]["status"], _body(sent)) == (200, b"late")
