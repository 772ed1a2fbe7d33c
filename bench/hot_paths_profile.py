"""In-process profile of the three hot paths' web CPU (issue 25, lever 2): no server, no load generator.

Django's WSGI handler is called directly, in this process, with a prepared environ, N times per path
(after a warm-up), and the CPU of each request is read with time.process_time():

* `nexus`: a signed customer Text message, `POST /nexus/v3/channels/{id}/messages` (a webhook channel made
  here, its own client per request);
* `esp`: `ChatService.InviteToChat` (tests/fixtures/invite_to_chat_request.json on the demo simulator channel,
  a new client per request), `POST /esp` with a superuser's token;
* `agent_message`: `POST /api/interactions/{id}/messages/` with a text, the same token, on an interaction
  opened by a customer message.

The figures are the whole request as the web process does it (parsing, checks, the service's transaction,
PostgreSQL's round trips seen from the client side, the task published after the commit);
`<path>_postgres_cpu_ms_per_request` is PostgreSQL's own CPU apart (the connection's backend, from /proc: the
connection is kept throughout; the warm-up's requests included). The database is `DATABASE_URL` (migrated,
`seed_demo` loaded when its channel is missing); Celery's broker is `CELERY_BROKER_URL` (tasks are published, no
worker needs to run).

    DATABASE_URL=postgres://... CELERY_BROKER_URL=redis://... .venv/bin/python -m bench.hot_paths_profile [-n 2000]
        [--profile PATH]

Prints `name=value` lines: `<path>_cpu_ms_per_request` (mean), `<path>_cpu_ms_p50`, `<path>_statements` (sent to
PostgreSQL a request, BEGIN and COMMIT apart: `<path>_transaction_statements`); and, to see the web
machinery alone (middleware, DRF or not) without the database's share and its noise, `<path>_refused_cpu_ms_p50`
of requests refused before any write (/esp without a token, /nexus with a wrong signature: one cached read).

With `--profile PATH`, after the measured runs each path's requests run once more (`-n` of them) under cProfile:
`PATH.<path>.prof` (pstats) and `PATH.<path>.txt` (the 40 functions of most own time, then of most cumulative
time); the figures above are measured without it.
"""

import argparse
import hashlib
import hmac
import io
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

from bench.measure import proc_stat

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
CHANNEL_ID = "channel-bench-hot-paths"
SECRET = "bench-hot-paths-secret"
DEMO_CHANNEL_ID = "channel-ghub-simulator"
STATEMENTS_COUNTED = 50  # requests per path whose statements are counted (CaptureQueriesContext), after the timed ones


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="requests measured per path (default 2000)")
    parser.add_argument("--warmup", type=int, default=100, help="requests per path before measuring")
    parser.add_argument("--profile", metavar="PATH", help="also profile each path's requests (cProfile) to PATH.*")
    return parser.parse_args()


def setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    os.environ["CONN_MAX_AGE"] = "86400"  # one backend throughout: its CPU is read from /proc
    os.environ.setdefault("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")  # the bench channel's webhook (never called)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


class Caller:
    """Django's WSGI application called as a server would call it."""

    def __init__(self):
        from django.core.wsgi import get_wsgi_application

        self.app = get_wsgi_application()

    def __call__(self, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, bytes]:
        environ = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True,
            "wsgi.run_once": False, "wsgi.version": (1, 0), "CONTENT_LENGTH": str(len(body)),
        }
        for name, value in (headers or {}).items():
            key = name.upper().replace("-", "_")
            environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
        answer = {}

        def start_response(status, response_headers, exc_info=None):
            answer["status"] = int(status.split(" ", 1)[0])

        chunks = self.app(environ, start_response)
        try:
            content = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        return answer["status"], content


def prepare(call: Caller) -> dict:
    """The rows the three paths need (made once, kept between runs); their ids."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from channels_app.models import Channel, StandardResponse, Tenant
    from channels_app.services.channels import channel_save

    if not Channel.objects.filter(channel_id=DEMO_CHANNEL_ID).exists():
        call_command("seed_demo", verbosity=0)
    if not Channel.objects.filter(channel_id=CHANNEL_ID).exists():
        channel_save(
            channel=Channel(channel_id=CHANNEL_ID, name="Bench hot paths", tenant=Tenant.objects.get(pk=1),
                            media_type="sms", transport="webhook", business_id="0123456789",
                            webhook_url="http://127.0.0.1:9/hook", secret=SECRET),
            inbound_route_by_call="1:session-chat",
        )
    user_model = get_user_model()
    user = user_model.objects.filter(username="bench-hot").first() or user_model.objects.create_superuser(
        "bench-hot", "", None)
    token, _ = Token.objects.get_or_create(user=user)
    # A fresh token: one older than TOKEN_TTL is refused.
    Token.objects.filter(pk=token.pk).delete()
    token = Token.objects.create(user=user)
    auth = {"Authorization": f"Token {token.key}", "Content-Type": "application/json"}
    response = json.loads((FIXTURES / "invite_to_chat_standard_response.json").read_text())
    if not StandardResponse.objects.filter(pk=response["id"]).exists():
        status, body = call("POST", "/api/standard-responses/", json.dumps(response).encode(), auth)
        if status not in (201, 400):
            raise RuntimeError(f"standard response refused: {status} {body[:300]!r}")
    client = f"1650{time.time_ns() % 10_000_000:07d}"
    opening = nexus_request(client, f"open-{time.time_ns()}")
    status, body = call("POST", f"/nexus/v3/channels/{CHANNEL_ID}/messages", *opening)
    if status != 200:
        raise RuntimeError(f"inbound message refused: {status} {body[:300]!r}")
    from channels_app.models import Interaction

    interaction = Interaction.objects.filter(channel__channel_id=CHANNEL_ID, client_id=client).get()
    return {"auth": auth, "interaction": interaction.pk}


def nexus_request(client: str, message_id: str) -> tuple[bytes, dict]:
    body = json.dumps({"messages": [{
        "type": "Text", "text": f"Hello, this is customer message {message_id}",
        "channel": {"messageId": f"in-{message_id}", "from": {"id": client, "nickname": "Bench"},
                    "to": {"id": "0123456789"}},
    }]}).encode()
    signature = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    return body, {"Content-Type": "application/json", "X-Hub-Signature": signature}


def backend_pid() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def measure(name: str, count: int, warmup: int, one, expected=(200, 202)) -> list[float]:
    cpu = []
    for index in range(warmup + count):
        started = time.process_time()
        status, body = one(index)
        spent = time.process_time() - started
        if status not in expected:
            raise RuntimeError(f"{name}: answered {status}: {body[:300]!r}")
        if index >= warmup:
            cpu.append(spent * 1000)
    return cpu


def profile(name: str, count: int, first: int, one, path: str) -> None:
    """`count` more requests of a path under cProfile; the stats to PATH.<name>.prof and a summary to .txt."""
    import cProfile
    import pstats

    profiler = cProfile.Profile(time.process_time)  # CPU, not the waits for PostgreSQL
    profiler.enable()
    for index in range(first, first + count):
        one(index)
    profiler.disable()
    profiler.dump_stats(f"{path}.{name}.prof")
    with open(f"{path}.{name}.txt", "w") as out:
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(40)
        stats.sort_stats("cumulative").print_stats(40)


def main() -> None:
    args = parse_args()
    setup_django()
    call = Caller()
    ids = prepare(call)
    stamp = f"{time.time_ns():x}"
    invite = json.loads((FIXTURES / "invite_to_chat_request.json").read_text())
    invite["Parameters"]["_umsChannel"] = DEMO_CHANNEL_ID

    def nexus(index):
        client = f"1651{index % 5000:07d}"
        return call("POST", f"/nexus/v3/channels/{CHANNEL_ID}/messages", *nexus_request(client, f"{stamp}-{index}"))

    def esp(index):
        client = f"1652{(time.time_ns() + index) % 10_000_000:07d}"
        invite["Parameters"]["_umsClientId"] = invite["UserData"]["PhoneNumber"] = client
        return call("POST", "/esp", json.dumps(invite).encode(), ids["auth"])

    def agent_message(index):
        body = json.dumps({"text": f"Agent answer {stamp}-{index}"}).encode()
        return call("POST", f"/api/interactions/{ids['interaction']}/messages/", body, ids["auth"])

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    figures = {}
    for name, one in (("nexus", nexus), ("esp", esp), ("agent_message", agent_message)):
        backend = backend_pid()
        backend_cpu = proc_stat(backend)[1]
        cpu = measure(name, args.n, args.warmup, one)
        backend_cpu = proc_stat(backend)[1] - backend_cpu  # the warm-up's share too: (warmup + n) requests
        if backend_pid() == backend:
            figures[f"{name}_postgres_cpu_ms_per_request"] = 1000 * backend_cpu / (args.n + args.warmup)
        figures[f"{name}_cpu_ms_per_request"] = statistics.fmean(cpu)
        figures[f"{name}_cpu_ms_p50"] = statistics.median(cpu)
        with CaptureQueriesContext(connection) as captured:
            measure(name, STATEMENTS_COUNTED, 0, lambda index, one=one: one(args.n + args.warmup + index))
        sql = [query["sql"] for query in captured.captured_queries]
        control = sum(1 for text in sql if text in ("BEGIN", "COMMIT"))
        figures[f"{name}_statements"] = (len(sql) - control) / STATEMENTS_COUNTED
        figures[f"{name}_transaction_statements"] = control / STATEMENTS_COUNTED
        if args.profile:
            profile(name, args.n, args.n + args.warmup + STATEMENTS_COUNTED, one, args.profile)
    logging.getLogger("django.request").setLevel(logging.ERROR)  # the refusals' warning lines
    refused = (
        ("esp", lambda index: call("POST", "/esp", b"{}", {"Content-Type": "application/json"})),
        ("nexus", lambda index: call("POST", f"/nexus/v3/channels/{CHANNEL_ID}/messages", b'{"messages": []}',
                                     {"Content-Type": "application/json", "X-Hub-Signature": "sha1=00"})),
    )
    for name, one in refused:
        figures[f"{name}_refused_cpu_ms_p50"] = statistics.median(
            measure(name, args.n, args.warmup, one, expected=(401,)))
    print(f"requests_per_path={args.n}")
    for name, value in figures.items():
        print(f"{name}={value:.3f}")


if __name__ == "__main__":
    main()
