"""Benchmark: the web server's own CPU a request, without Django (issue 25, lever 5).

    .venv/bin/python -m bench.server_overhead [--requests 5000] [--rounds 3] [--servers uvicorn,uvicorn-h11,...]

Each candidate of bench/processes.py's `--server` serves, in one process, an application that does nothing but
read the body and answer 200 with the headers Django sends on /nexus: through project/asgi.py's `Site` (its limits,
its access line, a2wsgi's hand-over to a thread) for the ASGI servers, the WSGI function itself for gthread and
granian-wsgi. `--concurrency` keep-alive clients POST a signed-webhook-sized request (700 bytes of JSON, the
headers a third party sends). The figure is the server process tree's CPU (user + system, /proc) over the
measured requests, divided by them: what the server costs a request, which the machine's other load barely moves
(CPU time, not elapsed time). The candidates are run in turn, `--rounds` times, so a change of the machine's load
falls on all of them. No database, no broker.
"""

import argparse
import asyncio
import os
import subprocess
import sys
import time

from bench.clients import AsyncConnection
from bench.measure import percentile, print_figures, tree_cpu
from bench.processes import BIN, ROOT, WEB_SERVERS, _wait_until, free_port

BODY = (b'{"channel":{"messageId":"00000000-0000-0000-0000-000000000000","type":"sms"},"customer":{"id":"+15550000000",'
        b'"name":"A customer"},"message":{"type":"text","text":"' + b"x" * 520 + b'"}}')
HEADERS = {"Content-Type": "application/json", "User-Agent": "third-party-webhook/1.0",
           "X-Hub-Signature": "sha1=" + "0" * 40, "Accept": "*/*", "Accept-Encoding": "gzip"}
RESPONSE = b'{"data":{"ids":["00000000-0000-0000-0000-000000000000"]}}'
RESPONSE_HEADERS = [("Content-Type", "application/json"), ("Vary", "Accept"), ("Allow", "POST, OPTIONS"),
                    ("X-Frame-Options", "DENY"), ("Content-Length", str(len(RESPONSE))),
                    ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "same-origin"),
                    ("Cross-Origin-Opener-Policy", "same-origin"), ("X-B3-TraceId", "a" * 32)]


def wsgi(environ, start_response):
    """The WSGI side: the body read, Django's answer to /nexus returned as it is."""
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", RESPONSE_HEADERS)
    return [RESPONSE]


async def _no_events(scope, receive, send):
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _site():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from project.asgi import Site, web_threads

    return Site(events=_no_events, wsgi=wsgi, threads=web_threads())


def __getattr__(name):
    # the ASGI application is made only in the server's process (it imports Django's settings through project.asgi)
    if name == "site":
        return _site()
    raise AttributeError(name)


def command(server: str, port: int, threads: int) -> list[str]:
    bind = ["--bind", f"127.0.0.1:{port}", "--workers", "1"]
    if server in ("uvicorn", "uvicorn-h11"):
        worker = "project.server.Worker" if server == "uvicorn" else "project.server.H11Worker"
        return [str(BIN / "gunicorn"), "bench.server_overhead:site", "--worker-class", worker, *bind]
    if server == "gthread":
        return [str(BIN / "gunicorn"), "bench.server_overhead:wsgi", "--threads", str(threads), *bind]
    granian = [str(BIN / "granian"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--no-ws",
               "--loop", "uvloop"]
    if server == "granian":  # one blocking thread is all its ASGI interface allows: the Site's pool does the rest
        return [*granian, "--interface", "asgi", "bench.server_overhead:site"]
    return [*granian, "--interface", "wsgi", "--blocking-threads", str(threads), "bench.server_overhead:wsgi"]


async def _load(port: int, count: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    remaining = [count]

    async def client():
        connection = AsyncConnection(port)
        try:
            while remaining[0] > 0:
                remaining[0] -= 1
                began = time.perf_counter()
                status, _ = await connection.request("POST", "/nexus/v3/channels/sms/messages", BODY, HEADERS)
                if status != 200:
                    raise RuntimeError(f"answered {status}")
                latencies.append(time.perf_counter() - began)
        finally:
            connection.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies


def measure(server: str, args) -> tuple[float, float]:
    """(server CPU µs a request, p50 ms) for one run of `server`."""
    port = free_port()
    env = {**os.environ, "WEB_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command(server, port, args.threads), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_until(lambda: _answers(port), 30, server, process)
        asyncio.run(_load(port, args.warmup, args.concurrency))
        before = tree_cpu(process.pid)
        latencies = asyncio.run(_load(port, args.requests, args.concurrency))
        after = tree_cpu(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
    return (after - before) * 1e6 / args.requests, percentile(sorted(latencies), 0.5) * 1000


def _answers(port: int) -> bool:
    async def one():
        connection = AsyncConnection(port)
        try:
            return (await connection.request("POST", "/nexus/v3/channels/sms/messages", BODY, HEADERS))[0] == 200
        finally:
            connection.close()

    return asyncio.run(one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="measured requests a run (default 5000)")
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured requests first (default 500)")
    parser.add_argument("--concurrency", type=int, default=8, help="keep-alive clients (default 8)")
    parser.add_argument("--threads", type=int, default=4, help="WSGI threads (WEB_THREADS; default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each candidate, in turn (default 3)")
    parser.add_argument("--servers", default=",".join(WEB_SERVERS), help="comma-separated (default: all)")
    args = parser.parse_args()
    servers = args.servers.split(",")
    unknown = set(servers) - set(WEB_SERVERS)
    if unknown:
        sys.exit(f"--servers: unknown {', '.join(sorted(unknown))}; one of {', '.join(WEB_SERVERS)}")
    results: dict[str, list[tuple[float, float]]] = {server: [] for server in servers}
    for round_ in range(args.rounds):
        for server in servers:
            results[server].append(measure(server, args))
            cpu, p50 = results[server][-1]
            print(f"round {round_ + 1} {server}: {cpu:.0f} µs CPU a request, p50 {p50:.2f} ms", flush=True)
    print_figures([(f"{server}_cpu_us_per_request_best", min(cpu for cpu, _ in results[server]))
                   for server in servers])


if __name__ == "__main__":
    main()
