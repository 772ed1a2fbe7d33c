"""Suite: forged and replayed requests on the Third-Party Messaging API, over HTTP.

    .venv/bin/python -m bench.forgery [--attacks 11000] [--seed 1] [--concurrency 8]

A fresh PostgreSQL database and Redis db 3 (bench/processes.py), an SMS webhook
channel with a known secret, gunicorn (the real HTTP stack). First a few
authentic customer messages (`--originals`, Text and Email) are sent and
stored. Then `--attacks` requests from tests/attacks.py (a seeded generator,
the same one tests/test_forgery.py runs at CI size), every kind in turn:
random signature, wrong secret, one byte of the body changed, one character
of the digest changed, truncated digest, upper-case digest, wrong prefix or
header, missing or empty header, empty body, another request's signature,
and replays of the authentic requests (same body, same signature). Last,
`--poisoned` correctly signed requests with a lone surrogate or a NUL
character in one string or key (the text rules): each must be answered 400
with status 520 and store nothing.

Every forgery must be answered 401 ("bad or missing signature", API.md) and
store nothing; every replay must be answered 200 with the id of the message
stored the first time and create nothing. Rows are counted in every table a
request could write (messages, interactions, contacts, early receipts,
deliveries) before and after the forgeries, and again after the replays.

Output: `name=value` lines: the count of each kind, refused (401),
unexpected_4xx, server_errors (5xx, on forgeries and replays), transport
errors, rows_written, replays, replay_wrong_id, replay_rows_created, the rate,
and the headline `accepted` (forgeries answered 2xx: must be 0) last. Exits 1
when an invariant is broken.
"""

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter

from bench.clients import post_all
from bench.measure import print_figures
from bench.processes import Stack
from tests.attacks import FORGERIES, KINDS, SignedRequest, attacks, poisoned_requests, valid_requests

DATABASE = "dms_bench_forgery"
REDIS_DB = 3
CHANNEL_ID = "bench-sms-forgery"
BUSINESS_ID = "0123456789"
SECRET = "bench-forgery-secret-5f1c0e0d9a"
PATH = f"/nexus/v3/channels/{CHANNEL_ID}/messages"
TABLES = ("message", "interaction", "contact", "earlyreceipt", "delivery")

SETUP = f"""
from channels_app.models import Channel, Tenant
from channels_app.services.channels import channel_save
channel_save(
    channel=Channel(channel_id={CHANNEL_ID!r}, name="Bench SMS", tenant=Tenant.objects.get(pk=1), media_type="sms",
                    transport="webhook", business_id={BUSINESS_ID!r}, webhook_url="http://127.0.0.1:9/hook",
                    secret={SECRET!r}),
    inbound_route_by_call="1:session-chat",
)
print("CHANNEL=ok")
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attacks", type=int, default=11_000,
                        help="requests generated, replays included (default 11000: 10000 forgeries, 1000 replays)")
    parser.add_argument("--originals", type=int, default=50, help="authentic requests sent first (default 50)")
    parser.add_argument("--poisoned", type=int, default=2000,
                        help="correctly signed requests with a lone surrogate or NUL (default 2000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generator (default 1)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes (default 3)")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (default 4)")
    return parser.parse_args()


def row_counts(stack: Stack) -> dict[str, int]:
    query = "SELECT " + ", ".join(f"(SELECT count(*) FROM channels_app_{table})" for table in TABLES)
    return dict(zip(TABLES, stack.sql(query)[0], strict=True))


def rows_added(before: dict[str, int], after: dict[str, int]) -> int:
    return sum(after[table] - before[table] for table in TABLES)


def send_all(port: int, requests: list[SignedRequest], concurrency: int) -> list[tuple[int | None, bytes]]:
    requests = [(r.body, {"Content-Type": "application/json", **r.headers}) for r in requests]
    return asyncio.run(post_all(port, PATH, requests, concurrency))


def main() -> int:
    args = parse_args()
    rng = random.Random(args.seed)
    originals = valid_requests(rng, secret=SECRET, business_id=BUSINESS_ID, count=args.originals,
                               tag=f"valid-{time.time_ns():x}")
    generated = attacks(rng, secret=SECRET, business_id=BUSINESS_ID, originals=originals, count=args.attacks)
    forgeries = [request for request in generated if request.kind in FORGERIES]
    replays = [request for request in generated if request.kind == "replay"]
    poisoned = poisoned_requests(rng, secret=SECRET, business_id=BUSINESS_ID, count=args.poisoned,
                                 tag=f"poison-{time.time_ns():x}")

    with Stack(DATABASE, redis_db=REDIS_DB) as stack:
        stack.prepare()
        stack.shell(SETUP)
        port = stack.start_gunicorn(workers=args.workers, threads=args.threads)

        stored_ids = {}
        for original in originals:
            status, answer = stack.request("POST", PATH, original.body,
                                           {"Content-Type": "application/json", **original.headers})
            if status != 200:
                raise RuntimeError(f"an authentic request was refused: {status} {answer[:500]!r}")
            stored_ids[original.body] = json.loads(answer)["data"]["ids"]
        before = row_counts(stack)

        started = time.perf_counter()
        forgery_answers = send_all(port, forgeries, args.concurrency)
        after_forgeries = row_counts(stack)
        replay_answers = send_all(port, replays, args.concurrency)
        seconds = time.perf_counter() - started
        after_replays = row_counts(stack)
        poisoned_answers = send_all(port, poisoned, args.concurrency)
        after_poisoned = row_counts(stack)
        stack.check_alive()

    statuses = Counter(status for status, _ in forgery_answers)
    accepted = sum(count for status, count in statuses.items() if status is not None and status < 300)
    refused = statuses[401]
    unexpected_4xx = sum(count for status, count in statuses.items() if status is not None and 400 <= status < 500
                         and status != 401)
    server_errors = sum(count for status, count in statuses.items() if status is not None and status >= 500)
    replay_statuses = Counter(status for status, _ in replay_answers)
    server_errors += sum(count for status, count in replay_statuses.items() if status is not None and status >= 500)
    replay_wrong_id = sum(
        1 for request, (status, answer) in zip(replays, replay_answers, strict=True)
        if status != 200 or json.loads(answer)["data"]["ids"] != stored_ids[request.body]
    )
    poisoned_statuses = Counter(status for status, _ in poisoned_answers)
    poisoned_refused = sum(1 for status, answer in poisoned_answers
                           if status == 400 and json.loads(answer)["status"]["code"] == 520)
    poisoned_server_errors = sum(count for status, count in poisoned_statuses.items()
                                 if status is not None and status >= 500)
    poisoned_rows_written = rows_added(after_replays, after_poisoned)
    transport_errors = statuses[None] + replay_statuses[None] + poisoned_statuses[None]
    rows_written = rows_added(before, after_forgeries)
    replay_rows_created = rows_added(after_forgeries, after_replays)

    for request, (status, answer) in zip(forgeries, forgery_answers, strict=True):
        if status != 401:
            print(f"sample: {request.kind} {request.headers} body={request.body[:120]!r} -> {status} "
                  f"{answer[:200]!r}", file=sys.stderr)
            break
    per_kind = Counter(request.kind for request in generated)
    print_figures([
        ("transport", f"gunicorn {args.workers}x{args.threads}, {args.concurrency} clients, PostgreSQL"),
        ("seed", args.seed),
        *((f"kind_{kind}", per_kind[kind]) for kind in KINDS),
        ("attacks", len(generated)),
        ("forgeries", len(forgeries)),
        ("refused", refused),
        ("unexpected_4xx", unexpected_4xx),
        ("server_errors", server_errors),
        ("transport_errors", transport_errors),
        ("rows_written", rows_written),
        ("replays", len(replays)),
        ("replay_wrong_id", replay_wrong_id),
        ("replay_rows_created", replay_rows_created),
        ("poisoned", len(poisoned)),
        ("poisoned_refused_520", poisoned_refused),
        ("poisoned_server_errors", poisoned_server_errors),
        ("poisoned_rows_written", poisoned_rows_written),
        ("seconds", seconds),
        ("requests_per_second", len(generated) / seconds),
        ("accepted", accepted),
    ])
    broken = (accepted or refused != len(forgeries) or server_errors or transport_errors or rows_written
              or replay_wrong_id or replay_rows_created or poisoned_refused != len(poisoned)
              or poisoned_server_errors or poisoned_rows_written)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
