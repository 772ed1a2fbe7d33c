"""Suite: a process killed right after its commit loses no message.

    .venv/bin/python -m bench.outbox_crash [--iterations 1000]

The crash window of the transactional outbox: an outgoing message and its
delivery row are committed (with the `NOTIFY deliveries_due` that wakes the
dispatcher), and the process dies before it has answered or done anything
else. Nothing was ever published to a broker; the committed delivery must be
found and sent once, including when no dispatcher listened at the time.

A fresh PostgreSQL database `dms_bench_chaos_outbox`, a `redis-server` of the
suite's own as the broker, one Celery worker with beat (bench/processes.py),
an SMS webhook channel to a receiver on 127.0.0.1 in this process, and one
open interaction; no dispatcher while the crashes happen, so that every
notification goes unheard. A driver process (this file with `--driver`,
Django set up once) forks one child per iteration; the child sends an agent
message through the API's service (`agent_message_send`) inside a
transaction whose commit hook reports the delivery id to the driver and
SIGKILLs the child: it dies right after the commit, every time. A child that
is not killed so breaks the run. Then the dispatcher starts, and the suite
waits (deadline 60 s + 0.1 s per iteration) until the receiver has every
committed message.

Output: `name=value` lines; iterations, killed_after_commit, committed
(messages in the database), delivered (their webhook-ids received),
duplicates (POSTs beyond one per webhook-id), unknown_posts (webhook-ids that
are none of them), the seconds spent crashing and recovering, and the
headline `lost` last. Exit status 1 when a message is lost or duplicated or a
child was not killed in the window.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "dms_bench_chaos_outbox"
CHANNEL_ID = "bench-sms-outbox"
SECRET = "bench-outbox-secret"
CUSTOMER = "16505550100"

SETUP = f"""
from channels_app.models import Channel, Tenant
from channels_app.services.channels import channel_save
channel_save(
    channel=Channel(channel_id={CHANNEL_ID!r}, name="Bench SMS outbox", tenant=Tenant.objects.get(pk=1),
                    media_type="sms", transport="webhook", business_id="0123456789", webhook_url=WEBHOOK_URL,
                    secret={SECRET!r}),
    inbound_route_by_call="1:session-chat",
)
print("CHANNEL=ok")
"""


# --- the driver: a Django process that forks a child per crash --------------------------------


def open_interaction(channel_id: str) -> str:
    """The customer writes first, so that agent messages may follow."""
    from channels_app.models import Channel
    from channels_app.services.interactions import customer_message_receive

    message, _ = customer_message_receive(channel=Channel.objects.get(channel_id=channel_id), client_id=CUSTOMER,
                                          text="Hello", channel_message_id=f"outbox-open-{time.time_ns()}")
    return message.interaction_id


def crash_after_commit(interaction_id: str, number: int) -> tuple[bool, list[str]]:
    """Fork a child that sends one agent message and is SIGKILLed as soon as it is committed; (killed by
    that hook, delivery ids it reported)."""
    from django.db import transaction

    from channels_app.models import Delivery
    from channels_app.services.agent_messages import agent_message_send

    read_end, write_end = os.pipe()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:  # the child: its own database connection (the driver holds none), and no way back
        os.close(read_end)

        def die_after_commit(delivery_id: int) -> None:
            os.write(write_end, f"{delivery_id}\n".encode())
            os.kill(os.getpid(), signal.SIGKILL)

        try:
            with transaction.atomic():
                sent = agent_message_send(tenant_ids=None, interaction_id=interaction_id,
                                          admit=lambda _interaction: {"text": f"Outbox crash {number}"})
                delivery_id = Delivery.objects.get(message_id=sent.message.pk).pk
                transaction.on_commit(lambda: die_after_commit(delivery_id))
        except BaseException as error:  # noqa: BLE001 - report and die like the others
            os.write(2, f"child {number}: {error!r}\n".encode())
        os._exit(3)  # not killed by the hook: the message was not committed
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        reported = pipe.read().split()
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, reported


def drive(channel_id: str, iterations: int) -> None:
    """Print `killed <delivery id>` (or `survived ...`) per iteration."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    os.environ.setdefault("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")  # its receiver listens on 127.0.0.1
    import django

    django.setup()
    from django.db import connections

    interaction_id = open_interaction(channel_id)
    connections.close_all()  # a child must not share the driver's connection
    for number in range(iterations):
        killed, reported = crash_after_commit(interaction_id, number)
        print(("killed " if killed else "survived ") + " ".join(reported), flush=True)


def run_driver(env: dict, channel_id: str, iterations: int) -> tuple[int, list[str]]:
    """Run the driver in a process of its own; (children killed in the window, delivery ids committed)."""
    result = subprocess.run([sys.executable, "-m", "bench.outbox_crash", "--driver", channel_id, str(iterations)],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"the crash driver failed ({result.returncode}):\n{result.stderr[-3000:]}")
    killed, delivery_ids = 0, []
    for line in result.stdout.splitlines():
        outcome, *ids = line.split()
        killed += outcome == "killed"
        delivery_ids += ids
    if result.stderr.strip():
        print(result.stderr[-2000:], file=sys.stderr)
    return killed, delivery_ids


# --- the suite ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=1000, help="crashes (default 1000)")
    args = parser.parse_args()

    from bench.measure import print_figures
    from bench.processes import Stack
    from tests.third_party import Receiver

    receiver = Receiver(SECRET)
    try:
        with Stack(DATABASE, broker="redis") as stack:
            stack.prepare()
            stack.shell(f"WEBHOOK_URL = {receiver.url!r}\n" + SETUP)
            stack.start_celery(count=1, concurrency=1, beat=True)

            started = time.monotonic()
            killed, delivery_ids = run_driver(stack.env, CHANNEL_ID, args.iterations)
            crashed = time.monotonic()
            sent_before_dispatcher = receiver.distinct()  # nothing: nobody listened, nothing was published
            stack.start_dispatcher()
            message_ids = [row[0] for row in stack.sql(
                "SELECT message_id FROM channels_app_delivery WHERE id = ANY(%s)", [int(i) for i in delivery_ids])]
            deadline = crashed + 60 + args.iterations * 0.1
            while receiver.arrived(message_ids) < len(message_ids) and time.monotonic() < deadline:
                stack.check_alive()
                time.sleep(0.2)
            recovered = time.monotonic()
            with receiver.lock:
                counts = dict(receiver.counts)
            ours = set(message_ids)
            delivered = sum(1 for message_id in ours if message_id in counts)
            states = dict(stack.sql("SELECT state, count(*) FROM channels_app_delivery WHERE id = ANY(%s) GROUP BY 1",
                                    [int(i) for i in delivery_ids]))
            figures = [
                ("iterations", args.iterations),
                ("killed_after_commit", killed),
                ("committed", len(message_ids)),
                ("delivered", delivered),
                ("deliveries_delivered", states.get("delivered", 0)),
                ("duplicates", sum(n - 1 for message_id, n in counts.items() if message_id in ours)),
                ("unknown_posts", sum(n for message_id, n in counts.items() if message_id not in ours)),
                ("crash_seconds", crashed - started),
                ("crashes_per_second", args.iterations / (crashed - started)),
                ("sent_before_the_dispatcher_started", sent_before_dispatcher),
                ("recovery_seconds", recovered - crashed),
                ("lost", len(message_ids) - delivered + (args.iterations - len(message_ids))),
            ]
            print_figures(figures)
            values = dict(figures)
            checks = [
                (killed == args.iterations, f"{args.iterations - killed} child(ren) not killed in the window"),
                (len(message_ids) == args.iterations, f"{len(message_ids)} messages committed of {args.iterations}"),
                (values["lost"] == 0, f"{values['lost']} message(s) lost"),
                (values["duplicates"] == 0 and values["unknown_posts"] == 0, "duplicate or unknown webhooks"),
                (values["deliveries_delivered"] == args.iterations, f"delivery states {states}"),
                (sent_before_dispatcher == 0, f"{sent_before_dispatcher} sent with no dispatcher running"),
            ]
            problems = [what for ok, what in checks if not ok]
            for problem in problems:
                print(f"broken: {problem}", file=sys.stderr)
            stack.keep_logs = bool(problems)
    finally:
        receiver.stop()
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--driver"]:
        drive(sys.argv[2], int(sys.argv[3]))
    else:
        main()
