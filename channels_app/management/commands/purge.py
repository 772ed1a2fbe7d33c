from django.core.management.base import BaseCommand, CommandError

from channels_app.models import Tenant
from channels_app.services.lifecycle import purge


class Command(BaseCommand):
    help = ("Remove what each tenant keeps no longer (its retention_days: conversations, deliveries, campaigns, "
            "audit), in short batches; the daily periodic task does the same.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count what would be removed; remove nothing.")
        parser.add_argument("--tenant", type=int, help="Only this tenant id.")

    def handle(self, *args, dry_run=False, tenant=None, **options):
        if tenant is not None and not Tenant.objects.filter(pk=tenant).exists():
            raise CommandError(f"Unknown tenant {tenant}.")
        results = purge(tenant_id=tenant, dry_run=dry_run)
        if not results:
            self.stdout.write("No tenant has a retention set: nothing to purge.")
        verb = "would remove" if dry_run else "removed"
        for tenant_id, removed in results.items():
            counts = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in removed.items() if count)
            self.stdout.write(f"Tenant {tenant_id}: {verb} {counts or 'nothing'}.")
