"""The dispatcher: the process that sends the messages people wait for (an
agent's reply, a strategy's invitation, a retry), the way a campaign sends
its own, in batches over keep-alive connections.

The web request writes the message and its delivery in one short transaction
and publishes nothing to the broker; on PostgreSQL that transaction also
NOTIFYs `deliveries_due` (services.deliveries.dispatcher_wake). Here one
thread LISTENs and wakes the drain threads; each claims the deliveries due
(SKIP LOCKED, with a lease) and sends them side by side
(services.deliveries.deliveries_send), and claims again until nothing is due.
Without a notification the listener wakes them every `poll_seconds` anyway,
which is how retries that came due, deliveries whose worker died, and every
delivery on SQLite (no LISTEN) are found.

Reliability is the outbox's: a delivery is owned only under its lease, so a
dispatcher killed mid-send leaves its deliveries to the next claim when the
lease runs out, and two dispatchers side by side never send one delivery
twice. Campaign batches run on the Celery `bulk` lane, never here, so a
campaign cannot delay a reply. `python manage.py dispatch` runs it.

The offers of the server's own routing are made here too, by one loop (the
`routing` thread; services.routing, "Who makes the offers"). A web request
that gives a queue work (a customer's first message, a transfer to a queue,
a reject, an agent ready or with more capacity, an interaction ended) NOTIFYs
`offers_due` with the queue's id at its commit; the listener hears it on the
same connection as `deliveries_due` and wakes the loop at once (no gathering:
an offer is what a customer waits for), which offers what waits in those
queues (services.routing.offers_make). On SQLite, and while the LISTEN
connection is down, the loop is woken by the poll instead. Every
`sweep_seconds` the loop also sweeps (services.routing.routing_sweep): offers
not answered in time expire and go to the next agent, and every queue with
something waiting unoffered is tried again, which is how what a notification
nobody heard should have offered is offered. Here rather than in a Celery
beat task because nothing of it lives in a process: the loop reads what is
due from the rows, so a dispatcher killed with SIGKILL loses nothing and the
next pass (of this dispatcher restarted, or of another one running beside
it) catches up. Dispatchers side by side are safe: a pass over a queue holds
the queue's row (SKIP LOCKED: the other leaves it and looks again a moment
later), the database refuses a second pending offer of an interaction, and
offers are taken and expired by conditional UPDATEs.
"""

import logging
import signal
import threading
import time

from django.db import close_old_connections, connection

from channels_app.services.deliveries import (
    DISPATCHER_CHANNEL,
    SEND_CONCURRENCY,
    deliveries_claim_due,
    deliveries_send,
)
from channels_app.services.routing import OFFERS_CHANNEL, offers_due_ids, offers_make, routing_sweep

logger = logging.getLogger(__name__)

# After a notification the listener waits this long before it wakes a thread, so that the commits of the next
# few milliseconds go in the same claim and the same write of outcomes: a batch has a fixed cost (its claim and
# its outcome's transaction, docs/PERFORMANCE.md), shared by its messages for 20 ms of latency.
GATHER_SECONDS = 0.02
# After a database error, how long a thread waits before trying again.
ERROR_BACKOFF_SECONDS = 1.0
# How often offers due to expire and interactions waiting unoffered are looked for.
SWEEP_SECONDS = 1.0
# A queue another dispatcher was working on is looked at again after this long (its pass may have ended
# just before what woke this one committed).
BUSY_RETRY_SECONDS = 0.05


class Dispatcher:
    def __init__(self, *, threads: int = 2, poll_seconds: float = 0.5, claim_limit: int | None = None,
                 gather_seconds: float = GATHER_SECONDS, sweep_seconds: float = SWEEP_SECONDS):
        # The threads together hold at most SEND_CONCURRENCY deliveries claimed and not yet recorded: all that
        # a kill can make the next claim send again (the chaos suite's bound).
        self.threads, self.poll_seconds = threads, poll_seconds
        self.claim_limit = claim_limit or max(1, SEND_CONCURRENCY // threads)
        self.gather_seconds = gather_seconds
        self.sweep_seconds = sweep_seconds
        # Work may be due: set by a wake-up, taken by the one drain thread it wakes. Wake-ups that come while
        # it is set make no more claims: a burst of notifications is one claim, not one per message.
        self.due = False
        self.due_changed = threading.Condition()
        self.stopping = threading.Event()
        self.listening = threading.Event()  # set while LISTEN is on (PostgreSQL)
        # Queues that may have something to offer, for the routing loop; `route_every`: all of them (a poll,
        # or LISTEN just (re)started). Set by the listener, taken by the loop.
        self.route_queues: set[int] = set()
        self.route_every = True
        self.route_changed = threading.Condition()

    # --- running -----------------------------------------------------------------------------------

    def run(self, *, ready=lambda: None, install_signals: bool = True) -> None:
        """Until `stop()` (SIGTERM or SIGINT): each drain thread finishes the batch it is sending, then the
        process ends. `ready` is called once the threads run."""
        if install_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: self.stop())
        workers = [threading.Thread(target=self._drain_forever, name=f"drain-{n}") for n in range(self.threads)]
        listener = threading.Thread(target=self._listen_forever, name="listen", daemon=True)
        router = threading.Thread(target=self._route_forever, name="routing", daemon=True)
        for thread in [listener, router, *workers]:
            thread.start()
        ready()
        for thread in workers:
            thread.join()
        # The routing loop ends its pass (a transaction of milliseconds), the listener its wait (a second).
        for thread in (router, listener):
            thread.join(timeout=5)
        logger.info("Dispatcher stopped.")

    def stop(self) -> None:
        self.stopping.set()
        with self.due_changed:
            self.due_changed.notify_all()
        with self.route_changed:
            self.route_changed.notify_all()

    def wake(self) -> None:
        with self.due_changed:
            self.due = True
            self.due_changed.notify()  # one idle thread; a busy one looks again when it is done

    def route_wake(self, queue_ids: set[int] | None = None) -> None:
        """The routing loop offers what waits in `queue_ids` (None: in every queue) as soon as it can."""
        with self.route_changed:
            if queue_ids is None:
                self.route_every = True
            else:
                self.route_queues |= queue_ids
            self.route_changed.notify()

    def _wait_for_work(self) -> bool:
        with self.due_changed:
            if not self.due:
                self.due_changed.wait(self.poll_seconds * 2)
            found, self.due = self.due, False
            return found

    # --- the listener --------------------------------------------------------------------------------

    def _listen_forever(self) -> None:
        while not self.stopping.is_set():
            try:
                if connection.vendor == "postgresql":
                    self._listen()
                else:
                    self.stopping.wait(self.poll_seconds)
                    self.wake()
                    self.route_wake()
            except Exception:  # the database went away: poll meanwhile, and listen again once it is back
                self.listening.clear()
                logger.exception("The dispatcher lost its LISTEN connection; polling until it is back.")
                connection.close()
                self._poll_for(ERROR_BACKOFF_SECONDS)
        connection.close()

    def _listen(self) -> None:
        connection.ensure_connection()
        raw = connection.connection
        with connection.cursor() as cursor:
            cursor.execute(f"LISTEN {DISPATCHER_CHANNEL}")
            cursor.execute(f"LISTEN {OFFERS_CHANNEL}")
        self.listening.set()
        self.wake()  # whatever came due while nobody listened
        self.route_wake()
        next_poll = time.monotonic() + self.poll_seconds
        while not self.stopping.is_set():
            # Waits of at most a second, so that stop() is heard.
            timeout = max(min(next_poll - time.monotonic(), 1.0), 0.0)
            deliveries = False
            for notification in raw.notifies(timeout=timeout, stop_after=1):
                deliveries |= self._heard(notification)
            if deliveries and self.gather_seconds:
                # the commits of the next few milliseconds: one claim for all of them (offers heard meanwhile
                # wake the routing loop at once)
                for notification in raw.notifies(timeout=self.gather_seconds):
                    self._heard(notification)
            if deliveries or time.monotonic() >= next_poll:
                self.wake()  # a notification, or the poll
                next_poll = time.monotonic() + self.poll_seconds

    def _heard(self, notification) -> bool:
        """Act on a notification: queues with offers due wake the routing loop now; True for deliveries."""
        if notification.channel == OFFERS_CHANNEL:
            self.route_wake(offers_due_ids(notification.payload))
            return False
        return True

    def _poll_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set() and time.monotonic() < deadline:
            self.wake()
            self.stopping.wait(min(self.poll_seconds, max(deadline - time.monotonic(), 0)))

    # --- the routing loop ----------------------------------------------------------------------------------

    def _route_forever(self) -> None:
        next_sweep = time.monotonic()  # at once: what waited while no dispatcher ran
        busy: set[int] = set()  # queues another dispatcher was working on
        retry_at = None
        while not self.stopping.is_set():
            with self.route_changed:
                while not (self.route_queues or self.route_every or self.stopping.is_set()):
                    wait = min(next_sweep, retry_at or next_sweep) - time.monotonic()
                    if wait <= 0:
                        break
                    self.route_changed.wait(wait)
                queues, every = self.route_queues, self.route_every
                self.route_queues, self.route_every = set(), False
            if self.stopping.is_set():
                break
            if retry_at is not None and time.monotonic() >= retry_at:
                queues, busy, retry_at = queues | busy, set(), None
            try:
                if time.monotonic() >= next_sweep:
                    routing_sweep()  # expiries, and every queue with something waiting unoffered
                    next_sweep = time.monotonic() + self.sweep_seconds
                    busy, retry_at = set(), None
                elif queues or every:
                    made = offers_make(queue_ids=None if every else queues)
                    if made.busy:
                        busy |= made.busy
                        retry_at = retry_at or time.monotonic() + BUSY_RETRY_SECONDS
            except Exception:  # a database error: what waits stays in its rows for the next pass
                logger.exception("The routing loop failed; trying again.")
                close_old_connections()
                connection.close()
                self.stopping.wait(ERROR_BACKOFF_SECONDS)
        connection.close()

    # --- the drain threads -----------------------------------------------------------------------------

    def _drain_forever(self) -> None:
        while not self.stopping.is_set():
            if not self._wait_for_work():
                continue
            try:
                self.drain()
            except Exception:  # a database error: the deliveries stay due (or leased and taken over later)
                logger.exception("The dispatcher could not claim or send; trying again.")
                close_old_connections()
                connection.close()
                self.stopping.wait(ERROR_BACKOFF_SECONDS)
        connection.close()

    def drain(self) -> int:
        """Claim and send until nothing is due; how many attempts were made."""
        attempted = 0
        while not self.stopping.is_set():
            claimed = deliveries_claim_due(limit=self.claim_limit)
            if not claimed:
                break
            if len(claimed) == self.claim_limit:
                self.wake()  # more may be due: another thread starts on them while this one sends
            attempted += len(deliveries_send(claimed=claimed))
        return attempted
