from django.core.management.base import BaseCommand
from django.db import transaction

from channels_app.choices import MediaType, Transport
from channels_app.models import Channel, Tenant
from channels_app.services.bootstrap import ensure_required_configuration
from channels_app.services.channels import channel_save

DEMO_CHANNEL_ID = "channel-ghub-simulator"
# Only with `--graph-stand-in` (make run with DEMO_GRAPH_STAND_IN=1): a WhatsApp Cloud API channel that talks to
# the Graph API stand-in (tests/graph_stand_in.py) scripts/serve.sh starts; never by default.
DEMO_CLOUD_CHANNEL_ID = "channel-wa-cloud-demo"
DEMO_CLOUD_SETTINGS = {"phone_number_id": "106540352242922", "waba_id": "102290129340398",
                       "access_token": "stand-in-token", "app_secret": "demo-app-secret",
                       "verify_token": "demo-verify-token"}


class Command(BaseCommand):
    help = "Load the demo data once (idempotent): tenant 1, a simulator WhatsApp channel, options, attributes."

    def add_arguments(self, parser):
        parser.add_argument("--graph-stand-in", action="store_true",
                            help="Also a WhatsApp Cloud API channel pointed at the Graph API stand-in.")

    @transaction.atomic
    def handle(self, *args, **options):
        ensure_required_configuration()
        tenant, _ = Tenant.objects.get_or_create(id=1, defaults={"name": "Environment"})
        if options.get("graph_stand_in") and not Channel.objects.filter(channel_id=DEMO_CLOUD_CHANNEL_ID).exists():
            channel_save(
                channel=Channel(
                    channel_id=DEMO_CLOUD_CHANNEL_ID, name="WhatsApp Cloud API (Graph API stand-in)", tenant=tenant,
                    media_type=MediaType.WHATSAPP, transport=Transport.WHATSAPP_CLOUD, business_id="15550783881",
                    **DEMO_CLOUD_SETTINGS,
                ),
                endpoints=["1:session-chat"], inbound_route_by_call="1:session-chat",
            )
            self.stdout.write(self.style.SUCCESS(f"Demo channel {DEMO_CLOUD_CHANNEL_ID} (Graph API stand-in)."))
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
