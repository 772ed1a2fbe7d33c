"""Suite: a process killed between commit and publish loses no message.

    .venv/bin/python -m bench.outbox_crash [--iterations 1000]

The crash window of the transactional outbox: an outgoing message and its
delivery row are committed, and only then is the `deliver` task published
(`transaction.on_commit` -> `services.deliveries.delivery_enqueue`). A process
that dies in between leaves a committed message that no task will send; the
relay (`relay_due_deliveries`, run by beat every 5 s) must publish it.

A fresh PostgreSQL database `dms_bench_chaos_outbox`, a `redis-server` of the
suite's own as the broker, one Celery worker with beat (bench/processes.py),
`DELIVERY_RELAY_GRACE_SECONDS=1`, an SMS webhook channel to a receiver on
127.0.0.1 in this process, and one open interaction. Then a driver process
(this file with `--driver`, Django set up once) forks one child per
iteration; the child sends an agent message through the API's service
(`agent_message_send`), with `delivery_enqueue` replaced in that child only by
a hook that reports the delivery id to the driver and SIGKILLs the child: it
dies after the commit and before anything reaches the broker, every time. A
child that is not killed so (the seam was not reached) breaks the run.

After the last crash the suite waits (deadline 60 s + 0.1 s per iteration)
until the receiver has every committed message. Output: `name=value` lines;
iterations, killed_after_commit, committed (messages in the database),
delivered (their webhook-ids received), duplicates (POSTs beyond one per
webhook-id), unknown_posts (webhook-ids that are none of them), the seconds
spent crashing and relaying, and the headline `lost` last. Exit status 1 when
a message is lost or duplicated or a child was not killed in the window.
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
    """Fork a child that sends one agent message and is SIGKILLed when the
    message would be published; (killed by that hook, delivery ids it reported)."""
    from channels_app.services import deliveries
    from channels_app.services.agent_messages import agent_message_send

    read_end, write_end = os.pipe()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:  # the child: its own database connection (the driver holds none), and no way back
        os.close(read_end)

        def crash_instead_of_publishing(delivery_id, **_options):
            os.write(write_end, f"{delivery_id}\n".encode())
            os.kill(os.getpid(), signal.SIGKILL)

        deliveries.delivery_enqueue = crash_instead_of_publishing
        try:
            agent_message_send(interaction_id=interaction_id, text=f"Outbox crash {number}")
        except BaseException as error:  # noqa: BLE001 - report and die like the others
            os.write(2, f"child {number}: {error!r}\n".encode())
        os._exit(3)  # not killed by the hook: the message was not committed or not published through the seam
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
            stack.env.update(DELIVERY_RELAY_GRACE_SECONDS="1")
            stack.prepare()
            stack.shell(f"WEBHOOK_URL = {receiver.url!r}\n" + SETUP)
            stack.start_celery(count=1, concurrency=1, beat=True)

            started = time.monotonic()
            killed, delivery_ids = run_driver(stack.env, CHANNEL_ID, args.iterations)
            crashed = time.monotonic()
            message_ids = [row[0] for row in stack.sql(
                "SELECT message_id FROM channels_app_delivery WHERE id = ANY(%s)", [int(i) for i in delivery_ids])]
            deadline = crashed + 60 + args.iterations * 0.1
            while receiver.arrived(message_ids) < len(message_ids) and time.monotonic() < deadline:
                stack.check_alive()
                time.sleep(0.2)
            relayed = time.monotonic()
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
                ("relay_seconds", relayed - crashed),
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
