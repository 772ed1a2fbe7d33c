import logging

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connection

from channels_app.dispatcher import Dispatcher

logger = logging.getLogger("channels_app.dispatcher")


class Command(BaseCommand):
    help = (
        "Run the dispatcher: send the messages people wait for (agent replies, invitations, retries) as they "
        "come due, in batches, and make the offers of the queues routed by the server (and expire them), until "
        "SIGTERM (channels_app/dispatcher.py)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--threads", type=int, default=None,
                            help="drain threads (default 2 on PostgreSQL, 1 on SQLite: one writer at a time)")
        parser.add_argument("--poll", type=float, default=None,
                            help="seconds between polls without a notification (default 0.5; SQLite: 0.1)")

    def handle(self, *args, threads, poll, **options):
        on_postgresql = connection.vendor == "postgresql"
        dispatcher = Dispatcher(
            threads=threads or (2 if on_postgresql else 1),
            poll_seconds=poll or (0.5 if on_postgresql else 0.1),
        )

        def ready():
            said = f"Dispatcher ready: {dispatcher.threads} drain threads, polling every {dispatcher.poll_seconds} s."
            if settings.LOG_FORMAT == "json":  # standard output carries JSON lines only
                logger.info(said)
                return
            self.stdout.write(said)
            self.stdout.flush()

        dispatcher.run(ready=ready)
