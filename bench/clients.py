"""The benchmarks' senders: keep-alive HTTP load on asyncio (`AsyncConnection`, `post_all`), the side of a
third party or a customer that sends to the server; `Api`, a JSON client of the REST API with a stack's token.

The other side of the third party, the webhook receiver, is `tests/third_party.py` (the suite's too).
"""

import asyncio
import json

from bench.processes import Stack


class AsyncConnection:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams, cheap enough
    that the load generator leaves the CPU to the server."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict | None = None) -> tuple[int, bytes]:
        """(status, body); raises OSError or asyncio.IncompleteReadError when the connection breaks."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        try:
            self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            fields = {}
            for line in head.decode("latin-1").split("\r\n")[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    fields[name.strip().lower()] = value.strip()
            if "content-length" in fields:
                data = await self.reader.readexactly(int(fields["content-length"]))
            elif fields.get("transfer-encoding", "").lower() == "chunked":
                data = b""
                while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    data += (await self.reader.readexactly(size + 2))[:-2]
                await self.reader.readuntil(b"\r\n")
            else:
                data = await self.reader.read()
            if fields.get("connection", "").lower() == "close":
                self.close()
            return status, data
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def post_all(port: int, path: str, requests: list[tuple[bytes, dict]],
                   concurrency: int) -> list[tuple[int | None, bytes]]:
    """POST each (body, headers) to `path` over `concurrency` keep-alive
    connections; (status, body) of each, in the order given, status None when
    its connection broke."""
    answers: list[tuple[int | None, bytes]] = [(None, b"")] * len(requests)
    indexes = iter(range(len(requests)))  # shared: each client takes the next request

    async def client() -> None:
        conn = AsyncConnection(port)
        for index in indexes:
            body, headers = requests[index]
            try:
                answers[index] = await conn.request("POST", path, body, headers)
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                answers[index] = (None, repr(error).encode())
        conn.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return answers


class Api:
    """The REST API with the stack's token, JSON in and out."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.headers = {"Authorization": f"Token {stack.token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body=None, expect=(200,)) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        status, answer = self.stack.request(method, path, data, self.headers)
        if status not in expect:
            raise RuntimeError(f"{method} {path}: {status} {answer[:1000].decode(errors='replace')}")
        return json.loads(answer) if answer else {}
