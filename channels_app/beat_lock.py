"""One beat schedules, however many machines start one (docs/OPERATIONS.md, "Exactly one beat").

Every node may run `celery beat` (scripts/serve.sh starts one); on PostgreSQL each takes a session-level advisory
lock on a connection of its own before it schedules anything. The first to get it schedules; the others wait
for it, trying again every BEAT_LOCK_RETRY_SECONDS, and log that they stand by. When the beat holding it dies
(its machine, kill -9), PostgreSQL ends its session and frees the lock, and a waiting beat takes over within
those seconds: no periodic task is scheduled twice, none stops being scheduled. A beat that loses its lock's
connection (the database restarted) takes the lock again, or, when another beat has it by then, ends (its
supervisor restarts it, and it waits like the others).

On SQLite (one machine) there is nothing to take.
"""

import logging
import os
import threading
import time

from django.db import connection

logger = logging.getLogger(__name__)

# pg_try_advisory_lock's key: "DMSBEAT!" as a 64-bit integer, so no other lock of the database collides with it.
BEAT_LOCK_KEY = int.from_bytes(b"DMSBEAT!", "big") - (1 << 63)
BEAT_LOCK_RETRY_SECONDS = float(os.environ.get("BEAT_LOCK_RETRY_SECONDS", "5"))

_held = None  # the raw connection that holds the lock (never Django's: it closes its connections at will)


def _new_connection():
    return connection.get_new_connection(connection.get_connection_params())


def _try_lock(raw) -> bool:
    with raw.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [BEAT_LOCK_KEY])
        return bool(cursor.fetchone()[0])


def beat_lock_acquire(*, retry_seconds: float | None = None) -> bool:
    """Wait until this process holds the beat's lock (True), or return False at once on a database without
    advisory locks."""
    global _held
    if connection.vendor != "postgresql":
        return False
    retry = BEAT_LOCK_RETRY_SECONDS if retry_seconds is None else retry_seconds
    raw = _new_connection()
    raw.autocommit = True
    said = False
    while not _try_lock(raw):
        if not said:
            logger.info("Another beat schedules; this one stands by and takes over if it stops.")
            said = True
        time.sleep(retry)
    _held = raw
    logger.info("This beat holds the beat lock and schedules.")
    threading.Thread(target=_watch, args=(retry,), name="beat-lock", daemon=True).start()
    return True


def _watch(retry: float) -> None:
    """Keep the lock's session alive, and notice when it is gone: take it again once the database is back, or
    stop when another beat has it by then."""
    global _held
    while True:
        time.sleep(retry)
        try:
            with _held.cursor() as cursor:
                cursor.execute("SELECT 1")
            continue
        except Exception:
            logger.warning("The beat lost its lock's connection; taking the lock again.")
        while True:
            try:
                raw = _new_connection()
                raw.autocommit = True
                taken = _try_lock(raw)
                break
            except Exception:  # the database is not back yet (no beat can schedule meanwhile)
                time.sleep(retry)
        if not taken:
            logger.error("Another beat holds the lock now: this one stops.")
            os._exit(1)
        _held = raw
