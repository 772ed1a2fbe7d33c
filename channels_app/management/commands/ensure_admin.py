import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create the superuser `admin` when missing "
        "(password from DJANGO_SUPERUSER_PASSWORD, or generated and printed)."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        user = User.objects.filter(username="admin").first()
        if user is None:
            generated = password is None
            password = password or secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", email="", password=password)
            shown = password if generated else "(from DJANGO_SUPERUSER_PASSWORD)"
            self.stdout.write(self.style.SUCCESS(f"Admin login: admin / {shown}"))
            if settings.REQUIRE_2FA_SUPERUSERS:
                self.stdout.write("Its first sign-in sets up an authenticator app from a QR code "
                                  "(two-factor authentication, README \"Sign-in\").")
        elif password:
            user.set_password(password)
            user.save(update_fields=["password"])
            self.stdout.write("Admin login: admin / (from DJANGO_SUPERUSER_PASSWORD)")
        else:
            self.stdout.write("Admin login: admin / the password printed on the first run "
                              "(set DJANGO_SUPERUSER_PASSWORD to change it)")
