from django.core.management.base import BaseCommand, CommandError

from channels_app.models import Channel
from channels_app.services.options import options_export_cfg


class Command(BaseCommand):
    help = "Print the effective options as a .cfg (INI) file."

    def add_arguments(self, parser):
        parser.add_argument("--channel", help="Effective values for this channel id (its overrides included).")

    def handle(self, *args, channel=None, **options):
        target = None
        if channel:
            target = Channel.objects.filter(channel_id=channel).first()
            if target is None:
                raise CommandError(f"Unknown channel {channel!r}.")
        self.stdout.write(options_export_cfg(channel=target), ending="")
