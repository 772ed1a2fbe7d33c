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

The routing sweep runs here too (a thread, every `sweep_seconds`): offers not
answered in time expire and go to the next agent, and what waits in a queue
routed by the server with nobody offered is offered again
(services.routing.routing_sweep). Here rather than in a Celery beat task
every second because nothing of it lives in a process: the sweep reads what
is due from the rows, so a dispatcher killed with SIGKILL loses nothing and
the next sweep (of this dispatcher restarted, or of another one running
beside it: sweeps side by side are safe, SKIP LOCKED and conditional
UPDATEs) catches up; a beat must be a single process, puts a message a
second on the broker (piling up while no worker takes them) and needs beat,
broker and a worker alive for an offer to expire.
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
from channels_app.services.routing import routing_sweep

logger = logging.getLogger(__name__)

# After a notification the listener waits this long before it wakes a thread, so that the commits of the next
# few milliseconds go in the same claim and the same write of outcomes: a batch has a fixed cost (its claim and
# its outcome's transaction, docs/PERFORMANCE.md), shared by its messages for 20 ms of latency.
GATHER_SECONDS = 0.02
# After a database error, how long a thread waits before trying again.
ERROR_BACKOFF_SECONDS = 1.0
# How often offers due to expire and interactions waiting unoffered are looked for.
SWEEP_SECONDS = 1.0


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

    # --- running -----------------------------------------------------------------------------------

    def run(self, *, ready=lambda: None, install_signals: bool = True) -> None:
        """Until `stop()` (SIGTERM or SIGINT): each drain thread finishes the batch it is sending, then the
        process ends. `ready` is called once the threads run."""
        if install_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: self.stop())
        workers = [threading.Thread(target=self._drain_forever, name=f"drain-{n}") for n in range(self.threads)]
        listener = threading.Thread(target=self._listen_forever, name="listen", daemon=True)
        sweeper = threading.Thread(target=self._sweep_forever, name="routing-sweep", daemon=True)
        for thread in [listener, sweeper, *workers]:
            thread.start()
        ready()
        for thread in workers:
            thread.join()
        logger.info("Dispatcher stopped.")

    def stop(self) -> None:
        self.stopping.set()
        with self.due_changed:
            self.due_changed.notify_all()

    def wake(self) -> None:
        with self.due_changed:
            self.due = True
            self.due_changed.notify()  # one idle thread; a busy one looks again when it is done

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
        self.listening.set()
        self.wake()  # whatever came due while nobody listened
        next_poll = time.monotonic() + self.poll_seconds
        while not self.stopping.is_set():
            # Waits of at most a second, so that stop() is heard.
            timeout = max(min(next_poll - time.monotonic(), 1.0), 0.0)
            if any(True for _ in raw.notifies(timeout=timeout, stop_after=1)):
                if self.gather_seconds:
                    for _notification in raw.notifies(timeout=self.gather_seconds):
                        pass  # the commits of the next few milliseconds: one claim for all of them
            elif time.monotonic() < next_poll:
                continue
            self.wake()  # a notification, or the poll
            next_poll = time.monotonic() + self.poll_seconds

    def _poll_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set() and time.monotonic() < deadline:
            self.wake()
            self.stopping.wait(min(self.poll_seconds, max(deadline - time.monotonic(), 0)))

    # --- the routing sweep ---------------------------------------------------------------------------------

    def _sweep_forever(self) -> None:
        while not self.stopping.is_set():
            try:
                routing_sweep()
            except Exception:  # a database error: what is due stays due for the next sweep
                logger.exception("The routing sweep failed; trying again.")
                close_old_connections()
                connection.close()
            self.stopping.wait(self.sweep_seconds)
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
