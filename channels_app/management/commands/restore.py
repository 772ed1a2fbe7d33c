from django.core.management.base import BaseCommand, CommandError

from channels_app.errors import ApplicationError
from channels_app.services.backups import backup_restore


class Command(BaseCommand):
    help = ("Restore the database and the stored files from an archive of manage.py backup, over what is there. "
            "Stop the web server and the workers first; start them again after.")

    def add_arguments(self, parser):
        parser.add_argument("path", help="The archive manage.py backup wrote.")
        parser.add_argument("--no-input", "--noinput", action="store_false", dest="interactive",
                            help="Do not ask for confirmation.")

    def handle(self, *args, path, interactive=True, **options):
        if interactive:
            answer = input("This replaces the whole database and the files of this installation. Type 'yes': ")
            if answer.strip().lower() != "yes":
                raise CommandError("Restore cancelled.")
        try:
            manifest = backup_restore(path=path)
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"Restored {sum(manifest['rows'].values())} rows and {manifest['files']} files of the "
                          f"backup of {manifest['created_at']}; every table and file checked.")
