from django.core.management.base import BaseCommand
from django.db import transaction

from channels_app.choices import MediaType, Transport
from channels_app.models import Channel, Tenant
from channels_app.services.bootstrap import ensure_required_configuration
from channels_app.services.channels import channel_save

DEMO_CHANNEL_ID = "channel-ghub-simulator"


class Command(BaseCommand):
    help = "Load the demo data once (idempotent): tenant 1, a simulator WhatsApp channel, options, attributes."

    @transaction.atomic
    def handle(self, *args, **options):
        ensure_required_configuration()
        tenant, _ = Tenant.objects.get_or_create(id=1, defaults={"name": "Environment"})
        if Channel.objects.filter(channel_id=DEMO_CHANNEL_ID).exists():
            self.stdout.write("Demo data already present.")
            return
        channel_save(
            channel=Channel(
                channel_id=DEMO_CHANNEL_ID,
                name="WhatsApp (Genesys Hub simulator)",
                tenant=tenant,
                media_type=MediaType.WHATSAPP,
                transport=Transport.SIMULATOR,
                business_id="19251112222",
            ),
            endpoints=["1:session-chat", "1:session-WA-sendSR"],
            inbound_route_by_call="1:session-chat",
        )
        self.stdout.write(self.style.SUCCESS(f"Demo data loaded: tenant 1, channel {DEMO_CHANNEL_ID}."))
