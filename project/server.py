"""gunicorn's worker for the site (`gunicorn project.asgi:application -k project.server.Worker`, scripts/serve.sh):
uvicorn's event loop in each of gunicorn's processes, serving project/asgi.py's one application (the event stream
on the loop, the rest through WSGI in a pool of WEB_THREADS threads).

gunicorn's master stays what it was: it holds the listening socket, starts WEB_CONCURRENCY processes, replaces a
dead or stuck one (`--timeout`), restarts them gracefully on SIGHUP (new ones first, then the old ones finish what
they accepted: docs/OPERATIONS.md, "Upgrades") and stops them on SIGTERM. What differs from uvicorn's own worker:

* HTTP/1.1 by h11, which refuses a request line and headers over 16 KiB (httptools has no such limit); gunicorn's
  finer limits are project/asgi.py's.
* No rewriting of the client's address from `X-Forwarded-For` (as gunicorn did not): the site reads that header
  itself, for the number of proxies it is told of (channels_app/client_address.py).
* No access line of uvicorn's: the site writes gunicorn's own (project/asgi.py).
* At most `--worker-connections` (gunicorn's setting, 1000) connections a process, event streams included: more
  are answered 503 at once.
* On a stop, the open event streams end as soon as the process stops accepting connections (their clients
  reconnect to another process with `Last-Event-ID`); other requests have gunicorn's graceful timeout to finish.
* On a stop, a connection with no request in progress (just accepted, or idle between two requests) gets
  IDLE_CONNECTION_GRACE_SECONDS to send one before it is closed: uvicorn closes it at once, and a request already
  on its way was lost (the client read a reset; a POST may not be sent twice), as a rolling restart under load
  showed (tests/test_rolling_restart.py).
"""

import asyncio
import logging
import sys

from gunicorn.arbiter import Arbiter
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

IDLE_CONNECTION_GRACE_SECONDS = 1.0

logger = logging.getLogger("uvicorn.error")  # gunicorn's error log (uvicorn_worker)


def _between_requests(connection) -> bool:
    """uvicorn's HTTP protocol holds no request, or has answered the last one (`cycle`: the request in progress)."""
    return connection.cycle is None or connection.cycle.response_complete


class SiteServer(Server):
    async def shutdown(self, sockets=None) -> None:
        for server in self.servers:  # no new connection first: a stream's client must reconnect elsewhere
            server.close()
        streams = getattr(self.config.app, "streams", None)  # project.asgi.Site's
        if streams is not None:
            streams.end_all()
        await self._let_idle_connections_send(IDLE_CONNECTION_GRACE_SECONDS)
        # closing its servers closed gunicorn's listening sockets too: closing them again only logs EBADF
        await super().shutdown(None)

    async def _let_idle_connections_send(self, seconds: float) -> None:
        """Wait until every connection holds a request (which then finishes as usual, its connection closed after
        the answer) or `seconds` have passed; the connections still idle then are closed by uvicorn's shutdown."""
        logger.info("Stopped accepting connections; idle connections have %.1f s to send a request", seconds)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline and any(_between_requests(c) for c in self.server_state.connections):
            await asyncio.sleep(0.02)


class Worker(UvicornWorker):
    CONFIG_KWARGS = {"loop": "auto", "http": "h11", "proxy_headers": False, "server_header": False,
                     "access_log": False, "lifespan": "off"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # gunicorn's master kills a worker still busy after graceful_timeout: it cancels what is left a little before
        self.config.timeout_graceful_shutdown = max(int(self.cfg.graceful_timeout) - 1, 1)
        # gunicorn's bound on a process's connections (--worker-connections, 1000), open event streams included:
        # beyond it a request is answered 503 at once instead of queueing for a thread without end
        self.config.limit_concurrency = int(self.cfg.worker_connections)

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        server = SiteServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
