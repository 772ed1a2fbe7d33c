from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from channels_app.errors import ApplicationError
from channels_app.services.backups import backup_write


class Command(BaseCommand):
    help = ("Back up the database and the stored files together, in one .tar.gz (SQLite or PostgreSQL; files on "
            "the filesystem or S3). The SECRET_KEY is not in it: keep it apart.")

    def add_arguments(self, parser):
        parser.add_argument("--output", help="The archive to write (default: var/backups/dms-<time>.tar.gz).")

    def handle(self, *args, output=None, **options):
        from django.conf import settings

        path = Path(output) if output else (
            Path(settings.VAR_DIR) / "backups" / f"dms-{timezone.now():%Y%m%d-%H%M%S}.tar.gz")
        try:
            manifest = backup_write(path=path)
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"Backed up {sum(manifest['rows'].values())} rows of {manifest['database']} and "
                          f"{manifest['files']} files to {path}.")
