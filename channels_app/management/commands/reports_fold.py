"""Fold what changed into the reports' figures now (the periodic task does it every 30 seconds), or, with
`--rebuild`, count every conversation again from its messages (after a restore)."""

from django.core.management.base import BaseCommand, CommandError

from channels_app.services.rollups import reports_fold, reports_rebuild


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--rebuild", action="store_true", help="throw the figures away and count everything again")

    def handle(self, *args, rebuild=False, **options):
        changed = reports_rebuild() if rebuild else reports_fold()
        if changed is None:
            raise CommandError("Another fold is running; try again when it ends.")
        self.stdout.write(f"Folded {changed} changed conversation(s).")
