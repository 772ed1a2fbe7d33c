"""Suite: a notification campaign under crashes loses nothing and has no duplicate effect.

    .venv/bin/python -m bench.chaos [N] [--broker redis|rabbitmq|both] [--seed S]

A campaign of N recipients (default 10,000) through the REST API, as
bench/campaign.py sets it up (a WhatsApp webhook channel, a notification with
two field codes), to a webhook receiver on 127.0.0.1 in this process. The
stack (bench/processes.py): a fresh PostgreSQL database `dms_bench_chaos`,
gunicorn (2 workers x 4 threads), two Celery workers (one prefork child each,
the first with beat), and a broker of the suite's own that it restarts: a
`redis-server` without persistence (a restart loses every queued task) or a
RabbitMQ node (`--broker rabbitmq`; its durable queue survives). The recovery
timings are shortened (RECOVERY below): a killed worker's leases run out in
10 s, the relay republishes a delivery after 5 s.

While the campaign runs, a second third party posts signed customer messages
to `/nexus/v3/channels/{id}/messages`, 50 to a request, one request at a time,
each retried with the same body until it is answered 200. At moments drawn
from `--seed` (fractions of the campaign received, printed as `schedule`):
  - worker_kill (3): SIGKILL a Celery worker's whole process tree (main
    process, pool child, beat) or the dispatcher, start it again at once (a
    worker started again is up before the next worker_kill);
  - broker_restart (1): stop the broker, leave it down 1 s, start it again;
  - web_kill (1): SIGKILL the gunicorn worker that holds the connection of an
    inbound request in flight (found by its socket in /proc), as soon as the
    request has waited 50 ms; gunicorn's master starts a new worker. Right
    after the break the request's messages must be all stored or none
    (`web_kill_rows_visible`), and its retry must store each exactly once.
Then it waits (deadline: 180 s + N x 0.1 s) until every recipient is final.

What is measured, from the receiver and the database at the end:
  - `lost`: recipients neither received by the third party nor failed with a
    reason (a recipient counted sent or delivered but never received is lost);
  - `not_final`: recipients still pending; `failed_without_reason`;
  - `duplicate_side_effects`: customers who received more than one distinct
    message (webhook-id) plus POSTs whose webhook-id is no message of the
    database; the receiver dedupes by webhook-id, so this is what a customer
    would see twice: it must be 0;
  - `duplicate_message_ids` (webhook-ids POSTed more than once) and
    `raw_duplicate_posts` (POSTs minus distinct webhook-ids): allowed only as
    the at-least-once of attempts cut short by a kill. A worker claims a
    delivery (`attempts` + 1) before it POSTs and records a DeliveryAttempt
    after; an attempt claimed but never recorded was cut short by a kill
    (`attempts_cut_short`, from the database). Every webhook-id must have at
    most as many POSTs as claimed attempts (`posts_beyond_attempts` = 0), so
    raw_duplicate_posts <= attempts_cut_short; and a kill may cut short only
    the sends then in flight: raw_duplicate_posts <= `duplicate_bound` =
    worker_kills x `sends_in_flight_per_worker` (the engine's
    SEND_CONCURRENCY, read from channels_app.services.deliveries, times one
    prefork child).
  - `final_done_pct`: recipients sent or delivered (the third party accepted
    the message) or failed with a reason, in % of N: must be 100.

Output: `name=value` lines, `lost` last; exit status 1 when an invariant is
broken (each printed as `broken: ...`), server logs kept.
"""

import argparse
import hashlib
import hmac
import http.client
import json
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bench.campaign import BUSINESS_ID, CHANNEL_ID, SECRET, set_up
from bench.clients import Api
from bench.measure import print_figures
from bench.processes import Stack
from tests.third_party import Receiver

DATABASE = "dms_bench_chaos"
GUNICORN_WORKERS, GUNICORN_THREADS = 2, 4
CELERY_WORKERS = 2
# Recovery timings (project/settings.py) short enough that a kill costs seconds, not minutes.
RECOVERY = {"DELIVERY_LEASE_SECONDS": "10", "DELIVERY_RELAY_GRACE_SECONDS": "5",
            "CAMPAIGN_CLAIM_LEASE_SECONDS": "10", "CAMPAIGN_STALLED_SECONDS": "5"}
INBOUND_PATH = f"/nexus/v3/channels/{CHANNEL_ID}/messages"


@dataclass
class Scenario:
    recipients: int = 10_000
    broker: str = "redis"
    seed: int = 7
    worker_kills: int = 3
    broker_restarts: int = 1
    web_kills: int = 1
    rate: int | None = None  # the campaign's rate_per_second (None: as fast as it goes)
    database: str = DATABASE
    recovery: dict = field(default_factory=lambda: dict(RECOVERY))
    inbound_batch: int = 50  # customer messages per inbound request
    inbound_pause: float = 1.0  # seconds between inbound requests (load, not a wait for work)
    deadline: float | None = None  # seconds for the campaign to end after the start

    def schedule(self) -> list[tuple[str, float]]:
        """(event, fraction of the campaign received when it happens), in order."""
        rng = random.Random(self.seed)
        events = (["worker_kill"] * self.worker_kills + ["broker_restart"] * self.broker_restarts
                  + ["web_kill"] * self.web_kills)
        moments = sorted(rng.uniform(0.05, 0.8) for _ in events)
        rng.shuffle(events)
        return list(zip(events, moments, strict=True))


# --- a second third party: customer messages in, retried until answered -------------------


class InboundClient:
    """Signed customer messages, `size` to a request, one request at a time on a
    keep-alive connection; a request that breaks is retried with the same body
    (the same channel.messageIds) on a new connection until it is answered."""

    def __init__(self, stack: Stack, size: int, pause: float):
        self.stack, self.size, self.pause = stack, size, pause
        self.stamp = f"{time.time_ns():x}"
        self.lock = threading.Lock()
        self.in_flight: tuple[int, int, float] | None = None  # (batch, local port, since: monotonic)
        self.answered: list[int] = []  # batches answered 200
        self.breaks: list[tuple[int, int]] = []  # (batch, its rows visible right after the break)
        self.errors: list[str] = []  # answers other than 200
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def prefix(self, batch: int) -> str:
        return f"in-{self.stamp}-{batch}-"

    def _request(self, batch: int) -> tuple[bytes, dict]:
        body = json.dumps({"messages": [{
            "type": "Text", "text": f"Customer message {n} of request {batch}",
            "channel": {"messageId": f"{self.prefix(batch)}{n}",
                        "from": {"id": f"1666{1_000_000 + n:07d}", "nickname": "Chaos"}, "to": {"id": BUSINESS_ID}},
        } for n in range(self.size)]}).encode()
        signature = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
        return body, {"Content-Type": "application/json", "X-Hub-Signature": signature}

    def rows(self, prefix: str) -> int:
        with psycopg.connect(self.stack.dsn, autocommit=True) as conn:
            return conn.execute("SELECT count(*) FROM channels_app_message WHERE channel_message_id LIKE %s",
                                (prefix + "%",)).fetchone()[0]

    def rows_by_batch(self) -> dict[int, int]:
        """Messages stored, by request (batch) number."""
        with psycopg.connect(self.stack.dsn, autocommit=True) as conn:
            return dict(conn.execute(
                "SELECT split_part(channel_message_id, '-', 3)::int, count(*) FROM channels_app_message"
                " WHERE channel_message_id LIKE %s GROUP BY 1", (f"in-{self.stamp}-%",)).fetchall())

    def _run(self) -> None:
        batch, conn = 0, None
        while not self.stopping.is_set():
            body, headers = self._request(batch)
            while True:
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", self.stack.port, timeout=120)
                        conn.connect()
                    with self.lock:
                        self.in_flight = (batch, conn.sock.getsockname()[1], time.monotonic())
                    conn.request("POST", INBOUND_PATH, body=body, headers=headers)
                    response = conn.getresponse()
                    answer, status = response.read(), response.status
                except (OSError, http.client.HTTPException):
                    with self.lock:
                        self.in_flight = None
                    if conn is not None:
                        conn.close()
                    conn = None
                    self.breaks.append((batch, self.rows(self.prefix(batch))))
                    continue
                with self.lock:
                    self.in_flight = None
                if status == 200:
                    self.answered.append(batch)
                else:
                    self.errors.append(f"{status}: {answer[:300].decode(errors='replace')}")
                break
            batch += 1
            self.stopping.wait(self.pause)
        if conn is not None:
            conn.close()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(180)


def serving_pid(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """The pid among `pids` that holds the server side of the TCP connection
    127.0.0.1:client_port -> 127.0.0.1:server_port (from /proc/net/tcp)."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if (int(fields[1].split(":")[1], 16) == server_port and int(fields[2].split(":")[1], 16) == client_port
                and fields[9] != "0"):
            inode = fields[9]
            break
    if inode is None:
        return None
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
        except OSError:
            continue
    return None


# --- the run --------------------------------------------------------------------------------


def poll_until(condition, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


class Chaos:
    def __init__(self, scenario: Scenario, stack: Stack, receiver: Receiver, inbound: InboundClient):
        self.scenario, self.stack, self.receiver, self.inbound = scenario, stack, receiver, inbound
        self.rng = random.Random(scenario.seed + 1)
        self.done: list[tuple[str, float, str]] = []  # (event, progress when it started, detail)
        self.broker_down_seconds = 0.0
        self.web_kill_hits: list[int] = []  # rows of the broken request visible right after the kill
        self.web_kill_misses = 0
        self.last_event_at = time.monotonic()

    def progress(self) -> float:
        return self.receiver.distinct() / self.scenario.recipients

    def worker_kill(self) -> str:
        """SIGKILL a worker's process tree and start it again at once (without
        waiting for it: the other events go on while it boots)."""
        self.stack.wait_for_celery(CELERY_WORKERS, timeout=120)  # a worker started again is up before it dies again
        number = self.rng.randint(1, CELERY_WORKERS + 1)
        if number > CELERY_WORKERS:  # the dispatcher: the retries and the deliveries of the workers killed
            pids = self.stack.kill("dispatcher1")
            self.stack.start_dispatcher(wait=False)
            return f"dispatcher1:{len(pids)}_processes"
        pids = self.stack.kill(f"celery{number}")
        self.stack.start_celery_worker(number, beat=number == 1)
        return f"celery{number}:{len(pids)}_processes"

    def broker_restart(self) -> str:
        self.broker_down_seconds += self.stack.restart_broker(down_seconds=1.0)
        return f"down_{self.broker_down_seconds:.1f}s"

    def web_kill(self, min_age: float = 0.01) -> str:
        """SIGKILL the gunicorn worker serving an inbound request that has waited `min_age` (its bytes sent on the
        loopback: the worker has it). At 0.05 s a request of 100 messages, ~50 ms on a fast day, was rarely old
        enough: the kill once waited 41 s for one, and the CI-size campaign ended first."""
        for _ in range(3):  # a request answered between the look and the kill does not count: once more
            def old_request():
                with self.inbound.lock:
                    flight = self.inbound.in_flight
                return flight if flight and time.monotonic() - flight[2] >= min_age else None

            batch, client_port, _since = poll_until(old_request, 120, "an inbound request in flight", 0.01)
            master = next(p.pid for name, p in self.stack.processes if name == "gunicorn")
            workers = [pid for pid in self.stack.tree("gunicorn") if pid != master]
            pid = serving_pid(self.stack.port, client_port, workers)
            if pid is None:
                continue
            breaks_before = len(self.inbound.breaks)
            os.kill(pid, signal.SIGKILL)
            poll_until(lambda b=batch, n=breaks_before: len(self.inbound.breaks) > n or b in self.inbound.answered,
                       60, "the inbound client to see the kill")
            hit = [rows for broken, rows in self.inbound.breaks[breaks_before:] if broken == batch]
            if hit:
                self.web_kill_hits.append(hit[0])
                return f"gunicorn_worker_{pid}:batch_{batch}:rows_visible_{hit[0]}"
            self.web_kill_misses += 1
        raise RuntimeError("no inbound request could be hit in flight in three tries")

    def run(self) -> None:
        total = self.scenario.recipients
        for event, moment in self.scenario.schedule():
            poll_until(lambda m=moment: self.progress() >= m or self._stalled(), 600, f"{moment:.0%} of the campaign")
            progress = self.progress()
            began = time.monotonic()
            detail = getattr(self, event)()
            self.done.append((event, progress, detail))
            self.last_event_at = time.monotonic()
            print(f"event {event} at {progress:.1%} of {total}: {detail} ({self.last_event_at - began:.1f} s,"
                  f" {self.progress():.1%} after)", flush=True)

    def _stalled(self) -> bool:
        self.stack.check_alive()
        return False


def final_state(stack: Stack, campaign_id: int, receiver: Receiver) -> dict:
    """The figures that prove the run, from the database and the receiver."""
    rows = stack.sql(
        "SELECT r.client_id, r.error, m.id, m.status, m.reasons, d.attempts,"
        " (SELECT count(*) FROM channels_app_deliveryattempt a WHERE a.delivery_id = d.id)"
        " FROM channels_app_campaignrecipient r"
        " LEFT JOIN channels_app_message m ON m.id = r.message_id"
        " LEFT JOIN channels_app_delivery d ON d.message_id = m.id"
        " WHERE r.campaign_id = %s", campaign_id)
    with receiver.lock:
        counts, recipients = dict(receiver.counts), dict(receiver.recipients)
        bad_signatures = receiver.bad_signatures
    known = {row[0] for row in stack.sql("SELECT id FROM channels_app_message WHERE direction = 'outbound'")}
    figures = {"sent": 0, "delivered": 0, "failed": 0, "failed_without_reason": 0, "not_final": 0, "lost": 0,
               "attempts_cut_short": 0, "posts_beyond_attempts": 0}
    for _client_id, error, message_id, status, reasons, attempts, recorded in rows:
        if error or status in ("failed", "removed"):
            figures["failed"] += 1
            figures["failed_without_reason"] += not (error or reasons)
        elif status in ("sent", "delivered"):
            figures[status] += 1
            figures["lost"] += message_id not in counts  # the database says sent; the third party never saw it
        else:
            figures["not_final"] += 1
            figures["lost"] += 1
        if attempts is not None:
            figures["attempts_cut_short"] += attempts - recorded
            figures["posts_beyond_attempts"] += max(0, counts.get(message_id, 0) - attempts)
    ids_by_customer: dict[str, set] = {}
    for webhook_id, customer in recipients.items():
        ids_by_customer.setdefault(customer, set()).add(webhook_id)
    figures["customers_with_two_messages"] = sum(1 for ids in ids_by_customer.values() if len(ids) > 1)
    figures["posts_of_unknown_messages"] = sum(n for webhook_id, n in counts.items() if webhook_id not in known)
    figures["duplicate_side_effects"] = figures["customers_with_two_messages"] + figures["posts_of_unknown_messages"]
    figures["received"] = len(counts)
    figures["duplicate_message_ids"] = sum(1 for n in counts.values() if n > 1)
    figures["raw_duplicate_posts"] = sum(counts.values()) - len(counts)
    figures["bad_signatures"] = bad_signatures
    figures["recipients_in_database"] = len(rows)
    return figures


def run(scenario: Scenario) -> tuple[list[tuple[str, object]], list[str]]:
    """Run the scenario; (figures in print order, broken invariants)."""
    receiver = Receiver(SECRET, note_recipients=True)
    deadline = scenario.deadline or 180 + scenario.recipients * 0.1
    set_up_started = time.monotonic()
    try:
        with Stack(scenario.database, broker=scenario.broker) as stack:
            stack.env.update(scenario.recovery)
            # Production settings, minus the HTTPS redirect (plain HTTP here).
            stack.env.update(DEBUG="false", SECRET_KEY="bench-chaos-" + "x" * 50,
                             ALLOWED_HOSTS="127.0.0.1,localhost", SECURE_SSL_REDIRECT="false")
            stack.prepare()
            for number in range(1, CELERY_WORKERS + 1):  # they boot while gunicorn does
                stack.start_celery_worker(number, beat=number == 1)
            stack.start_gunicorn(workers=GUNICORN_WORKERS, threads=GUNICORN_THREADS)
            stack.wait_for_celery(CELERY_WORKERS)
            stack.start_dispatcher()
            sends_in_flight = int(stack.shell(
                "from channels_app.services import deliveries\n"
                "print(f'SEND_CONCURRENCY={getattr(deliveries, \"SEND_CONCURRENCY\", 1)}')")["SEND_CONCURRENCY"])
            api = Api(stack)
            campaign_id, _ = set_up(api, receiver, scenario.recipients, scenario.rate)
            inbound = InboundClient(stack, scenario.inbound_batch, scenario.inbound_pause)
            chaos = Chaos(scenario, stack, receiver, inbound)
            schedule = scenario.schedule()
            print(f"seed={scenario.seed} schedule="
                  + ",".join(f"{event}@{moment:.2f}" for event, moment in schedule), flush=True)

            inbound.start()
            started = time.monotonic()
            set_up_seconds = started - set_up_started
            api.call("POST", f"/api/campaigns/{campaign_id}/start/")
            chaos.run()
            campaign_end = None

            def finished():
                nonlocal campaign_end
                stack.check_alive()
                try:
                    campaign = api.call("GET", f"/api/campaigns/{campaign_id}/")
                except (OSError, RuntimeError):
                    return None  # a gunicorn worker being replaced
                final = campaign["sent"] + campaign["delivered"] + campaign["failed"]
                if campaign["pending"] == 0 and final == campaign["total"] and campaign["state"] == "completed":
                    accepted = campaign["sent"] + campaign["delivered"]
                    if receiver.distinct() >= accepted:
                        campaign_end = time.monotonic()
                        return campaign
                return None

            try:
                campaign = poll_until(finished, max(deadline - (time.monotonic() - started), 1),
                                      "every recipient to be final", 0.5)
            except RuntimeError as error:
                print(f"broken: {error}", file=sys.stderr)
                campaign = api.call("GET", f"/api/campaigns/{campaign_id}/")
            inbound.stop()
            seconds = (campaign_end or time.monotonic()) - started
            state = final_state(stack, campaign_id, receiver)
            inbound_expected = scenario.inbound_batch * len(inbound.answered)
            stored_by_batch = inbound.rows_by_batch()
            inbound_stored = sum(stored_by_batch.values())
            inbound_partial = sum(1 for b in inbound.answered if stored_by_batch.get(b) != scenario.inbound_batch)
            events_in_campaign = sum(1 for _event, progress, _ in chaos.done if progress < 1.0)

            n = scenario.recipients
            worker_kills = sum(1 for e in chaos.done if e[0] == "worker_kill")
            duplicate_bound = worker_kills * sends_in_flight
            figures: list[tuple[str, object]] = [
                ("broker", scenario.broker),
                ("recipients", n),
                ("seed", scenario.seed),
                ("worker_kills", worker_kills),
                ("broker_restarts", sum(1 for e in chaos.done if e[0] == "broker_restart")),
                ("broker_down_seconds", chaos.broker_down_seconds),
                ("web_kills", len(chaos.web_kill_hits) + chaos.web_kill_misses),
                ("web_kills_hitting_a_request", len(chaos.web_kill_hits)),
                ("web_kill_rows_visible", ",".join(str(rows) for rows in chaos.web_kill_hits) or "none"),
                ("events_during_campaign", events_in_campaign),
                ("campaign_state", campaign["state"]),
                ("total", campaign["total"]),
                ("sent", state["sent"]),
                ("delivered", state["delivered"]),
                ("failed", state["failed"]),
                ("failed_without_reason", state["failed_without_reason"]),
                ("not_final", state["not_final"]),
                ("received", state["received"]),
                ("bad_signatures", state["bad_signatures"]),
                ("attempts_cut_short", state["attempts_cut_short"]),
                ("posts_beyond_attempts", state["posts_beyond_attempts"]),
                ("duplicate_message_ids", state["duplicate_message_ids"]),
                ("raw_duplicate_posts", state["raw_duplicate_posts"]),
                ("sends_in_flight_per_worker", sends_in_flight),
                ("duplicate_bound", duplicate_bound),
                ("customers_with_two_messages", state["customers_with_two_messages"]),
                ("posts_of_unknown_messages", state["posts_of_unknown_messages"]),
                ("duplicate_side_effects", state["duplicate_side_effects"]),
                ("inbound_requests_answered", len(inbound.answered)),
                ("inbound_requests_broken", len(inbound.breaks)),
                ("inbound_errors", len(inbound.errors)),
                ("inbound_messages_expected", inbound_expected),
                ("inbound_messages_stored", inbound_stored),
                ("inbound_requests_stored_partly", inbound_partial),
                ("final_done_pct", 100.0 * (state["sent"] + state["delivered"] + state["failed"]) / n),
                ("set_up_seconds", set_up_seconds),
                ("last_event_seconds", chaos.last_event_at - started),
                ("seconds", seconds),
                ("lost", state["lost"]),
            ]
            problems = []
            checks = [
                (state["lost"] == 0, f"{state['lost']} recipient(s) lost"),
                (state["recipients_in_database"] == n, f"{state['recipients_in_database']} recipients stored, not {n}"),
                (state["not_final"] == 0 and campaign["state"] == "completed",
                 f"{state['not_final']} recipient(s) not final, campaign {campaign['state']}"),
                (state["failed_without_reason"] == 0, "failed recipients without a reason"),
                (state["duplicate_side_effects"] == 0, "a customer saw a message twice (or a message we do not have)"),
                (state["posts_beyond_attempts"] == 0, "a webhook was POSTed more often than it was attempted"),
                (state["raw_duplicate_posts"] <= state["attempts_cut_short"],
                 "more duplicate POSTs than attempts cut short by kills"),
                (state["raw_duplicate_posts"] <= duplicate_bound,
                 f"more duplicate POSTs than the {duplicate_bound} sends the kills could find in flight"),
                (state["bad_signatures"] == 0, "webhooks with a wrong signature"),
                (not inbound.errors, f"inbound answers other than 200: {inbound.errors[:3]}"),
                (all(rows in (0, scenario.inbound_batch) for _batch, rows in inbound.breaks),
                 f"a broken inbound request was stored in part: {inbound.breaks}"),
                (inbound_stored == inbound_expected and inbound_partial == 0,
                 f"inbound messages stored {inbound_stored}, expected {inbound_expected} (each once)"),
                (len(chaos.web_kill_hits) == scenario.web_kills, "the web kill did not hit a request in flight"),
                (events_in_campaign == len(schedule),
                 "the campaign ended before every event happened (a larger N or --rate)"),
            ]
            problems = [what for ok, what in checks if not ok]
            if problems:
                for problem in problems:
                    print(f"broken: {problem}", file=sys.stderr)
                stack.keep_logs = True
            return figures, problems
    finally:
        receiver.stop()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipients", nargs="?", type=int, default=10_000, help="recipients (default 10,000)")
    parser.add_argument("--broker", choices=["redis", "rabbitmq", "both"], default="redis")
    parser.add_argument("--seed", type=int, default=7, help="the moments of the events and the workers killed")
    parser.add_argument("--worker-kills", type=int, default=3)
    parser.add_argument("--rate", type=int, default=None, help="the campaign's rate_per_second (default none)")
    parser.add_argument("--deadline", type=float, default=None, help="seconds (default 180 + N x 0.1)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    brokers = ["redis", "rabbitmq"] if args.broker == "both" else [args.broker]
    broken, lost = False, 0
    for broker in brokers:
        figures, problems = run(Scenario(recipients=args.recipients, broker=broker, seed=args.seed,
                                         worker_kills=args.worker_kills, rate=args.rate, deadline=args.deadline))
        print_figures(figures)
        broken = broken or bool(problems)
        lost += dict(figures)["lost"]
    if len(brokers) > 1:
        print_figures([("lost_all_brokers", lost)])
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
