"""Django's PostgreSQL backend, with a health check that costs no round trip when nothing is wrong.

With CONN_HEALTH_CHECKS (project/settings.py) Django checks a kept connection before a request's first query by
running `SELECT 1` on it: one more round trip on every request, a statement's CPU on both sides (the web's and
PostgreSQL's) for what is, under load, always a healthy connection.

Here a connection is taken as healthy without a query when nothing waits to be read on its socket and it is idle
outside a transaction: between two requests the server has nothing to say to a connection that listens to
nothing, so anything readable is its goodbye (the error a terminated backend sends before it closes, a restart's
shutdown) or the end of the stream (its process killed, the socket closed by the kernel). Whenever something is
readable, or the connection is not idle, Django's own check runs (`SELECT 1`, the connection closed and made again
when it fails), exactly as before. What a query would find and the socket cannot show (a peer gone without a word,
a network cut) a `SELECT 1` would have waited on as long as the request's own query now does.
"""

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def close_if_health_check_failed(self):
        if (self.pool is None and self.connection is not None and self.health_check_enabled
                and not self.health_check_done and self._quiet()):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def _quiet(self) -> bool:
        """Idle outside a transaction, and nothing to read from the server."""
        raw = self.connection
        if raw.closed or raw.broken or raw.info.transaction_status != pq.TransactionStatus.IDLE:
            return False
        try:
            readable, _, _ = select.select([raw.fileno()], [], [], 0)
        except (OSError, ValueError):  # the socket is gone
            return False
        return not readable
