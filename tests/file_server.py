"""A real HTTP server on 127.0.0.1 that serves files for the tests of inbound attachments, each path with
its own behaviour: a status, headers, a body (bytes, or a number of bytes streamed without being held),
a delay before answering, or a body trickled one byte at a time (a slow server)."""

import io
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Served:
    body: bytes | int = b""  # an int: that many bytes of b"\0", streamed in chunks
    status: int = 200
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    content_length: bool = True  # False: no Content-Length, the body ends with the connection
    prefix: bytes = b""  # streamed bodies start with it (a file signature)
    trickle: float = 0.0  # > 0: the bytes body is sent one byte every `trickle` seconds (until the server stops)


@dataclass
class FileServer:
    server: ThreadingHTTPServer
    files: dict = field(default_factory=dict)
    requests: list = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def stop(self) -> None:
        self.stopping.set()  # a trickling answer ends
        self.server.shutdown()
        self.server.server_close()


def start_file_server() -> FileServer:
    running: FileServer | None = None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            running.requests.append(self.path)
            served = running.files.get(self.path)
            if served is None:
                served = Served(b"no such file", status=404)
            if callable(served):
                served = served()
            if served.delay:
                time.sleep(served.delay)
            size = served.body if isinstance(served.body, int) else len(served.body)
            try:
                self.send_response(served.status)
                for name, value in served.headers.items():
                    self.send_header(name, value)
                if served.content_length:
                    self.send_header("Content-Length", str(size))
                self.send_header("Connection", "close")
                self.end_headers()
                if isinstance(served.body, bytes) and served.trickle:
                    for byte in served.body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        if running.stopping.wait(served.trickle):
                            return
                    return
                if isinstance(served.body, bytes):
                    self.wfile.write(served.body)
                    return
                stream = io.BytesIO(served.prefix)
                sent, chunk = 0, b"\0" * (1024 * 1024)
                head = stream.read()
                self.wfile.write(head)
                sent += len(head)
                while sent < size:
                    part = chunk[: size - sent]
                    self.wfile.write(part)
                    sent += len(part)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the fetcher stopped reading (too large, timed out)
            finally:
                self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    running = FileServer(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return running
