from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from channels_app.errors import ApplicationError
from channels_app.models import Channel
from channels_app.services.options import options_import_cfg


class Command(BaseCommand):
    help = "Import options from a .cfg (INI) file and print what was set, skipped and refused."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--channel", help="Apply the values to this channel id as overrides.")

    def handle(self, *args, file: Path, channel=None, **options):
        target = None
        if channel:
            target = Channel.objects.filter(channel_id=channel).first()
            if target is None:
                raise CommandError(f"Unknown channel {channel!r}.")
        try:
            text = file.read_text(encoding="utf-8-sig")
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror}") from error
        try:
            report = options_import_cfg(text=text, channel=target)
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(report.as_text())
        if report.refused:
            raise CommandError(f"{len(report.refused)} refused (listed above); the others were set.")
