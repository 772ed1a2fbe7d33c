"""The site's HTTP protocol (project/server.py's HttpToolsProtocol: uvicorn's on httptools) over a real socket: what
h11 did that httptools does not, kept. A head still incomplete past 16 KiB is refused (400) instead of growing;
within it, heads in several reads, after a keep-alive request or pipelined after a body, are served; the response's
header names go out as written; an HTTP/1.0 client gets a response of unknown length delimited by the connection's
close, not chunked. tests/test_one_port.py shows gunicorn's finer limits through `make run`'s real server."""

import socket
import threading
import time

import pytest
from uvicorn import Config, Server

from project.server import MAX_INCOMPLETE_HEAD, HttpToolsProtocol


async def _app(scope, receive, send):
    """Echoes the request's body length; /stream answers without a length, in two chunks."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"Content-Type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b"data: one\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"data: two\n\n"})
        return
    body = f"{scope['method']} {scope['path']} {size}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"Content-Type", b"text/plain"), (b"X-B3-TraceId", b"a" * 32), (b"Content-Length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def port():
    config = Config(_app, host="127.0.0.1", port=0, http=HttpToolsProtocol, lifespan="off", loop="asyncio",
                    access_log=False, log_level="critical")
    server = Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start within 10 s"
        time.sleep(0.01)
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(10)
    sock.close()


def _connect(port: int) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def _read_until_closed(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _read_responses(connection: socket.socket, count: int) -> list[bytes]:
    """`count` responses with a Content-Length, read off a kept-alive connection."""
    buffer, responses = b"", []
    while len(responses) < count:
        head, separator, rest = buffer.partition(b"\r\n\r\n")
        if separator:
            length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            if len(rest) >= length:
                responses.append(head + separator + rest[:length])
                buffer = rest[length:]
                continue
        chunk = connection.recv(65536)
        assert chunk, f"the connection closed after {len(responses)} responses"
        buffer += chunk
    return responses


def _padding(total: int) -> bytes:
    """Header fields of 1,000 bytes each, about `total` bytes in all."""
    return b"".join(b"X-Padding-%03d: %s\r\n" % (n, b"x" * 983) for n in range(total // 1000))


def test_a_head_still_incomplete_past_16_kib_is_refused(port):
    with _connect(port) as connection:
        connection.sendall(b"GET /api/ HTTP/1.1\r\nHost: x\r\n" + _padding(MAX_INCOMPLETE_HEAD + 2000))
        answer = _read_until_closed(connection)  # and the connection is closed: nothing more is read

    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.endswith(b"Invalid HTTP request received.")


def test_heads_within_the_bound_are_served_in_several_reads_and_one_after_another(port):
    head = b"GET /api/ HTTP/1.1\r\nHost: x\r\n" + _padding(12000)
    with _connect(port) as connection:
        for _ in range(3):  # each head counted from its own start: three of them are more than 16 KiB together
            connection.sendall(head)
            time.sleep(0.05)  # two reads for the server, the head incomplete after the first
            connection.sendall(b"\r\n")
            assert _read_responses(connection, 1)[0].startswith(b"HTTP/1.1 200 ")


def test_a_head_pipelined_after_a_body_is_served(port):
    body = b"b" * 40000
    first = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    second = b"GET /after HTTP/1.1\r\nHost: x\r\n" + _padding(12000) + b"\r\n"
    with _connect(port) as connection:
        connection.sendall(first + second[:6000])
        time.sleep(0.05)
        connection.sendall(second[6000:])
        answers = _read_responses(connection, 2)

    assert answers[0].endswith(b"POST /upload 40000")
    assert answers[1].endswith(b"GET /after 0")


def test_response_header_names_go_out_as_the_application_wrote_them(port):
    with _connect(port) as connection:
        connection.sendall(b"GET /api/ HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = _read_responses(connection, 1)[0]

    assert b"\r\nX-B3-TraceId: " + b"a" * 32 + b"\r\n" in answer
    assert b"\r\nContent-Type: text/plain\r\n" in answer


def test_an_http_1_0_client_reads_a_response_of_unknown_length_to_the_close(port):
    with _connect(port) as connection:
        connection.sendall(b"GET /stream HTTP/1.0\r\nHost: x\r\n\r\n")
        answer = _read_until_closed(connection)

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding" not in head.lower()
    assert b"connection: close" in head.lower()
    assert body == b"data: one\n\ndata: two\n\n"


def test_an_http_1_1_client_reads_it_chunked(port):
    with _connect(port) as connection:
        connection.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = _read_until_closed(connection)

    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert body == b"b\r\ndata: one\n\n\r\nb\r\ndata: two\n\n\r\n0\r\n\r\n"
