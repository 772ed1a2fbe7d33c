"""Suite: delivery receipts in order, and shuffled with duplicates, over HTTP.

    .venv/bin/python -m bench.receipts [--receipts 10000] [--messages 2500] [--seed 1]

A fresh PostgreSQL database and Redis db 3 (bench/processes.py), gunicorn, and
two SMS webhook channels, "in order" and "disordered", each with the same
`--messages` sent outgoing messages (external ids ext-0 ... as their webhook
answers would have named them). tests/receipt_plans.py (the same plan
tests/test_receipts.py runs at CI size) gives each message a story of
receipts, `--receipts` in all: Delivered, Removed, or Failed with reason
codes of the API's table (305, 310, 350, 500, 510, 512, 520, 530).

The in-order channel gets every story in its own order, one request after
the other, 1..`--batch` receipts a request. The disordered channel gets the
same receipts plus `--duplicated` (20%) of them sent twice, all shuffled,
1..`--batch` a request, over `--concurrency` connections at once (so the
server reorders them further). Every message must end in the same state on
both channels: status, reasons, and whether it has a delivery time. Then
`--unknown` receipts name ids no message has (short ones, over-long ones,
ones with a NUL character), each in its own request: each must be ignored
(200, its id "") or refused (4xx), never a 5xx.

Output: `name=value` lines: the counts sent, server_errors (5xx on the
in-order and disordered streams), the final states, the unknown-id outcomes
(unknown_id_5xx must be 0), and the headline `mismatches` (messages whose
final state differs between the two channels: must be 0) last. Exits 1 when
an invariant is broken.
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import random
import sys
import time
from collections import Counter

from bench.clients import post_all
from bench.measure import print_figures
from bench.processes import Stack
from tests.receipt_plans import Receipt, batches, disordered, in_order, request_body, stories

DATABASE = "dms_bench_receipts"
REDIS_DB = 3
IN_ORDER, DISORDERED = "bench-receipts-in-order", "bench-receipts-disordered"
SECRET = "bench-receipts-secret-7d41"

SETUP = """
from channels_app.models import Channel, Message, MessageStatus, Tenant
from channels_app.services.channels import channel_save
from channels_app.services.contacts import contact_identify
from channels_app.services.interactions import interaction_create
for channel_id in ({in_order!r}, {disordered!r}):
    channel = channel_save(channel=Channel(
        channel_id=channel_id, name=channel_id, tenant=Tenant.objects.get(pk=1), media_type="sms",
        transport="webhook", business_id="0123456789", webhook_url="http://127.0.0.1:9/hook", secret={secret!r}))
    contact = contact_identify(channel=channel, client_id="15556667777")
    interaction = interaction_create(channel=channel, contact=contact, client_id="15556667777",
                                     queue="1:session-chat", outbound=True, user_data={{}})
    Message.objects.bulk_create(
        Message(interaction=interaction, channel=channel, direction="outbound", text="Hello",
                status=MessageStatus.SENT, external_id=f"ext-{{number}}") for number in range({messages})
    )
print("MESSAGES=ok")
"""

FINAL_STATES = """
SELECT m.external_id, m.status, m.reasons::text, m.delivered_at IS NOT NULL
FROM channels_app_message m JOIN channels_app_channel c ON c.id = m.channel_id
WHERE c.channel_id = %s AND m.direction = 'outbound'
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--receipts", type=int, default=10_000, help="receipts in order (default 10000)")
    parser.add_argument("--messages", type=int, default=2_500, help="messages they name (default 2500)")
    parser.add_argument("--duplicated", type=float, default=0.2, help="fraction sent twice (default 0.2)")
    parser.add_argument("--batch", type=int, default=10, help="most receipts in one request (default 10)")
    parser.add_argument("--unknown", type=int, default=500, help="receipts for unknown ids (default 500)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the plan (default 1)")
    parser.add_argument("--concurrency", type=int, default=8, help="connections of the disordered run (default 8)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes (default 3)")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (default 4)")
    return parser.parse_args()


def signed(receipts: list[Receipt]) -> tuple[bytes, dict]:
    body = request_body(receipts)
    signature = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    return body, {"Content-Type": "application/json", "X-Hub-Signature": signature}


def post(port: int, channel_id: str, requests: list[list[Receipt]], concurrency: int) -> list[tuple[int | None, bytes]]:
    path = f"/nexus/v3/channels/{channel_id}/messages"
    return asyncio.run(post_all(port, path, [signed(receipts) for receipts in requests], concurrency))


def unknown_receipts(rng: random.Random, count: int) -> list[Receipt]:
    """Ids no message has: short, over the 200-character column, with a NUL character."""
    shapes = (
        lambda n: f"unknown-{n}",
        lambda n: f"ext-{10**9 + n}",
        lambda n: "u" * rng.randint(201, 400),
        lambda n: f"nul-{n}\x00",
        lambda n: "é" * rng.randint(150, 250),
    )
    return [Receipt(shapes[n % len(shapes)](n), rng.choice(("Delivered", "Removed", "Failed"))) for n in range(count)]


def errors(answers: list[tuple[int | None, bytes]]) -> tuple[int, int, int]:
    """(5xx, other non-200, broken connections)."""
    statuses = Counter(status for status, _ in answers)
    server = sum(n for status, n in statuses.items() if status is not None and status >= 500)
    other = sum(n for status, n in statuses.items() if status is not None and status < 500 and status != 200)
    return server, other, statuses[None]


def main() -> int:
    args = parse_args()
    rng = random.Random(args.seed)
    ordered = in_order(stories(rng, messages=args.messages, receipts=args.receipts))
    shuffled = disordered(rng, ordered, duplicated=args.duplicated)
    ordered_requests = batches(rng, ordered, largest=args.batch)
    shuffled_requests = batches(rng, shuffled, largest=args.batch)
    unknown = unknown_receipts(rng, args.unknown)

    with Stack(DATABASE, redis_db=REDIS_DB) as stack:
        stack.prepare()
        stack.shell(SETUP.format(in_order=IN_ORDER, disordered=DISORDERED, secret=SECRET, messages=args.messages))
        port = stack.start_gunicorn(workers=args.workers, threads=args.threads)

        started = time.perf_counter()
        ordered_answers = post(port, IN_ORDER, ordered_requests, concurrency=1)
        in_order_seconds = time.perf_counter() - started
        started = time.perf_counter()
        shuffled_answers = post(port, DISORDERED, shuffled_requests, concurrency=args.concurrency)
        disordered_seconds = time.perf_counter() - started
        unknown_answers = post(port, DISORDERED, [[receipt] for receipt in unknown], concurrency=args.concurrency)

        states = {channel_id: {row[0]: row[1:] for row in stack.sql(FINAL_STATES, channel_id)}
                  for channel_id in (IN_ORDER, DISORDERED)}
        stack.check_alive()

    server_errors, rejected, broken = (sum(figures) for figures in
                                       zip(errors(ordered_answers), errors(shuffled_answers), strict=True))
    mismatched = [external for external, state in states[IN_ORDER].items() if states[DISORDERED].get(external) != state]
    for external in mismatched[:3]:
        print(f"mismatch {external}: in order {states[IN_ORDER][external]}, "
              f"disordered {states[DISORDERED].get(external)}", file=sys.stderr)
    for status, answer in [*ordered_answers, *shuffled_answers]:
        if status != 200:
            print(f"sample error: {status} {answer[:300]!r}", file=sys.stderr)
            break

    unknown_ignored = sum(1 for status, answer in unknown_answers
                          if status == 200 and json.loads(answer)["data"]["ids"] == [""])
    unknown_4xx = sum(1 for status, _ in unknown_answers if status is not None and 400 <= status < 500)
    unknown_5xx = sum(1 for status, _ in unknown_answers if status is None or status >= 500)
    unknown_other = len(unknown_answers) - unknown_ignored - unknown_4xx - unknown_5xx
    finals = Counter(state[0] for state in states[IN_ORDER].values())

    print_figures([
        ("transport", f"gunicorn {args.workers}x{args.threads}, PostgreSQL; disordered over {args.concurrency} "
                      "connections"),
        ("seed", args.seed),
        ("messages", args.messages),
        ("receipts", len(ordered)),
        ("duplicates", len(shuffled) - len(ordered)),
        ("receipts_disordered", len(shuffled)),
        ("requests_in_order", len(ordered_requests)),
        ("requests_disordered", len(shuffled_requests)),
        ("in_order_seconds", in_order_seconds),
        ("disordered_seconds", disordered_seconds),
        ("server_errors", server_errors),
        ("refused", rejected),
        ("transport_errors", broken),
        *((f"final_{status}", finals[status]) for status in ("sent", "delivered", "failed", "removed")),
        ("final_with_reasons", sum(1 for state in states[IN_ORDER].values() if state[1] != "[]")),
        ("final_with_delivered_at", sum(1 for state in states[IN_ORDER].values() if state[2])),
        ("messages_compared", len(states[IN_ORDER])),
        ("unknown_receipts", len(unknown)),
        ("unknown_ignored_2xx", unknown_ignored),
        ("unknown_refused_4xx", unknown_4xx),
        ("unknown_other", unknown_other),
        ("unknown_id_5xx", unknown_5xx),
        ("mismatches", len(mismatched)),
    ])
    broken_invariant = (mismatched or server_errors or rejected or broken or unknown_5xx or unknown_other
                        or len(states[IN_ORDER]) != args.messages)
    return 1 if broken_invariant else 0


if __name__ == "__main__":
    sys.exit(main())
