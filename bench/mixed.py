"""Benchmark: the priority lane. Agent messages while a big campaign runs.

    .venv/bin/python -m bench.mixed [N] [--rate 20] [--seconds 30]

A fresh PostgreSQL database and Redis db 9 (bench/processes.py), deployed as
`make run` deploys (scripts/serve.sh): gunicorn (2 workers x 4 threads,
production settings), a Celery worker on the `people` and `celery` queues
with the beat, one on the `bulk` queue (campaign batches), and the
dispatcher that sends single messages (channels_app/dispatcher.py). Two
receivers on 127.0.0.1 in this process (bench/campaign.py's and
bench/webhook.py's), one per channel.

A campaign of N recipients (default 100,000, no rate limit) is created and
started through the API as bench/campaign.py does. Once its first webhook has
arrived, agent messages are POSTed to one interaction of an SMS channel at a
steady `--rate` (default 20/s) for `--seconds` (default 30), as
bench/webhook.py does, and their webhooks awaited for up to `--drain` s.

Output: `name=value` lines: the campaign's progress during the agent window
(`campaign_received_during_window`, `campaign_per_second_during_window`,
`campaign_running_throughout`: it did not finish before the window ended, so
every agent message competed with it), the agents' `sent`, `lost`,
`duplicates`, API latency, CPU per agent message and per campaign recipient,
and the headline `agent_webhook_p99_ms` last (accepted → received; the
target is under 250 ms). Exit status 1 when an agent message is lost.
"""

import argparse
import asyncio
import time

from bench import campaign as campaign_bench
from bench import webhook as webhook_bench
from bench.clients import Api
from bench.measure import percentile, print_figures
from bench.processes import Stack
from tests.third_party import Receiver

DATABASE = "dms_bench_mixed"
REDIS_DB = 9


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipients", nargs="?", type=int, default=100_000, help="campaign size (default 100,000)")
    parser.add_argument("--rate", type=float, default=20.0, help="agent messages per second (default 20)")
    parser.add_argument("--seconds", type=float, default=30.0, help="agent sending duration (default 30)")
    parser.add_argument("--drain", type=float, default=30.0, help="max seconds to wait for agent webhooks")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    campaign_receiver = Receiver(campaign_bench.SECRET)
    agent_receiver = Receiver(webhook_bench.SECRET, clock=time.monotonic)
    try:
        with Stack(DATABASE, redis_db=REDIS_DB) as stack:
            stack.env.update(DEBUG="false", SECRET_KEY="bench-mixed-" + "x" * 50,
                             ALLOWED_HOSTS="127.0.0.1,localhost", SECURE_SSL_REDIRECT="false")
            stack.prepare()
            stack.shell(webhook_bench.CHANNEL_SNIPPET.format(channel_id=webhook_bench.CHANNEL_ID,
                                                             url=agent_receiver.url, secret=webhook_bench.SECRET))
            stack.start_gunicorn(workers=2, threads=4)
            # The lanes of scripts/serve.sh.
            stack.start_celery_worker(1, queues="people,celery", beat=True)
            stack.start_celery_worker(2, queues="bulk")
            stack.wait_for_celery(2)
            stack.start_dispatcher()
            api = Api(stack)
            campaign_id, _ = campaign_bench.set_up(api, campaign_receiver, args.recipients, None)
            interaction = webhook_bench.open_interaction(stack, "16502999999")

            api.call("POST", f"/api/campaigns/{campaign_id}/start/")
            deadline = time.monotonic() + 120
            while campaign_receiver.distinct() == 0:
                if time.monotonic() > deadline:
                    raise RuntimeError("the campaign sent nothing within 120 s")
                time.sleep(0.05)

            sender = webhook_bench.Sender(stack.port, stack.token, [interaction], args)
            meter = stack.cpu_meter().start()
            memory = stack.memory_meter().start()
            campaign_before = campaign_receiver.distinct()
            asyncio.run(sender.run())
            window = max(sender.finished - sender.began, 1e-9)
            campaign_during = campaign_receiver.distinct() - campaign_before
            state_after_window = api.call("GET", f"/api/campaigns/{campaign_id}/")["state"]
            drain_started = time.monotonic()
            while (agent_receiver.arrived(sender.accepted) < len(sender.accepted)
                   and time.monotonic() - drain_started < args.drain):
                time.sleep(0.05)
            cpu = meter.stop()
            memory.stop()
            stack.check_alive()

            with agent_receiver.lock:
                arrivals = dict(agent_receiver.arrivals)
            latencies = sorted(arrivals[i] - accepted for i, accepted in sender.accepted.items() if i in arrivals)
            api_latencies = sorted(sender.api_latencies)
            lost = len(sender.accepted) - len(latencies)
            campaign_sent = campaign_receiver.distinct() - campaign_before
            ours = sum(value for name, value in cpu.items() if name not in ("other", "seconds", "benchmark"))
            print_figures([
                ("recipients", args.recipients),
                ("rate_per_second", args.rate),
                ("seconds", args.seconds),
                ("campaign_received_during_window", campaign_during),
                ("campaign_per_second_during_window", campaign_during / window),
                ("campaign_state_after_window", state_after_window),
                ("campaign_running_throughout", state_after_window == "running"),
                ("sent", len(sender.accepted)),
                ("api_errors", sender.errors),
                ("received", len(latencies)),
                ("lost", lost),
                ("duplicates", agent_receiver.duplicate_posts()),
                ("api_p50_ms", percentile(api_latencies, 0.50) * 1000),
                ("api_p99_ms", percentile(api_latencies, 0.99) * 1000),
                # CPU of everything ours while both ran, per message sent (agents' and the campaign's).
                ("cpu_ms_per_message_all", ours * 1000 / max(len(sender.accepted) + campaign_sent, 1)),
                ("dispatcher_cpu_seconds", cpu.get("dispatcher1", 0.0)),
                ("bulk_worker_cpu_seconds", cpu.get("celery2", 0.0)),
                ("other_cpu_cores", cpu["other"] / cpu["seconds"]),
                *memory.figures(),
                ("agent_webhook_max_ms", (latencies[-1] if latencies else float("nan")) * 1000),
                ("agent_webhook_p50_ms", percentile(latencies, 0.50) * 1000),
                ("agent_webhook_p99_ms", percentile(latencies, 0.99) * 1000),
            ])
            if lost:
                raise SystemExit(1)
    finally:
        campaign_receiver.stop()
        agent_receiver.stop()


if __name__ == "__main__":
    main()
