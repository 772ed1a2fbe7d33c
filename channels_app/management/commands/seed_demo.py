"""Demo data that teaches: a simulator channel, a standard response of each
kind, a small finished campaign and two conversations. Every row is written
through the services, as the admin, the API and the hub would write it."""

from django.core.management.base import BaseCommand
from django.db import transaction

from channels_app.choices import ContentType, MediaType, Transport
from channels_app.models import Campaign, Channel, Interaction, StandardResponse, Tenant
from channels_app.services.bootstrap import ensure_required_configuration
from channels_app.services.channels import channel_save

DEMO_CHANNEL_ID = "channel-ghub-simulator"
DEMO_CAMPAIGN = "Demo: bill reminder"

# (id, name, content type, body, structured)
DEMO_RESPONSES = [
    ("DEMO0TEXT0000001", "Greeting", ContentType.TEXT,
     "Hello <$Contact.FirstName$>, this is <$Agent.FirstName$>. How can I help you today?", {}),
    ("DEMO0NOTIF000001", "Bill due (template)", ContentType.NOTIFICATION,
     "Dear {{1}}, your bill of {{2}} is due on Friday.",
     {"template": {"name": "bill_due", "language": "en"},
      "parameters": {"1": "<$Contact.FirstName$>", "2": "<$CustomProperties.Amount$>"}}),
    ("DEMO0RICH0000001", "Spring sale (rich media)", ContentType.RICH_MEDIA,
     "Hi {{1}}, our spring sale starts today.",
     {"template": {"name": "spring_sale", "language": "en"}, "parameters": {"1": "<$Contact.FirstName$>"},
      "header": {"type": "text", "text": "Spring sale"}, "footer": "Reply STOP to opt out",
      "buttons": [{"type": "quick_reply", "text": "Interested"}, {"type": "quick_reply", "text": "Not now"}]}),
    ("DEMO0BUTTONS0001", "Was this helpful? (reply buttons)", ContentType.REPLY_BUTTONS,
     "Did this answer your question, <$Contact.FirstName$>?",
     {"header": {"type": "text", "text": "Quick feedback"}, "footer": "One tap is enough",
      "buttons": [{"id": "yes", "title": "Yes, thanks"}, {"id": "no", "title": "No"},
                  {"id": "agent", "title": "Talk to an agent"}]}),
    ("DEMO0LIST0000001", "Choose a plan (list)", ContentType.LIST,
     "Which plan would you like to know more about?",
     {"header": {"type": "text", "text": "Our plans"}, "footer": "Prices include tax", "button": "See plans",
      "sections": [{"title": "Mobile", "rows": [
          {"id": "basic", "title": "Basic", "description": "5 GB, unlimited calls"},
          {"id": "plus", "title": "Plus", "description": "50 GB, roaming included"}]},
          {"title": "Home", "rows": [{"id": "fiber", "title": "Fiber 1 Gb/s", "description": "No contract"}]}]}),
    ("DEMO0APPLE000001", "Delivery slot (Apple quick replies)", ContentType.ABC_QUICK_REPLIES,
     "When should we deliver your order?",
     {"items": [{"identifier": "morning", "title": "Morning"}, {"identifier": "afternoon", "title": "Afternoon"},
                {"identifier": "evening", "title": "Evening"}]}),
]

DEMO_AUDIENCE = [
    {"client_id": "+15550100001", "Contact": {"FirstName": "Ada"}, "CustomProperties": {"Amount": "$42.00"}},
    {"client_id": "+15550100002", "Contact": {"FirstName": "Grace"}, "CustomProperties": {"Amount": "$17.50"}},
    {"client_id": "+15550100003", "Contact": {"FirstName": "Alan"}, "CustomProperties": {"Amount": "$99.90"}},
    # Refused, as the admin shows it on the campaign's page: not a phone number, and no amount.
    {"client_id": "ask-reception", "Contact": {"FirstName": "Edsger"}, "CustomProperties": {}},
]

DEMO_CONVERSATIONS = [
    ("+15550100010", "Maria", "Hi, my parcel has not arrived yet.",
     "Sorry to hear that, Maria. Could you give me the order number?"),
    ("+15550100011", "Tom", "Can I change my plan to Plus?", "Of course, Tom: I'll send you the plans."),
]

# Only with `--graph-stand-in` (make run with DEMO_GRAPH_STAND_IN=1): a WhatsApp Cloud API channel that talks to
# the Graph API stand-in (tests/graph_stand_in.py) scripts/serve.sh starts; never by default.
DEMO_CLOUD_CHANNEL_ID = "channel-wa-cloud-demo"
DEMO_CLOUD_SETTINGS = {"phone_number_id": "106540352242922", "waba_id": "102290129340398",
                       "access_token": "stand-in-token", "app_secret": "demo-app-secret",
                       "verify_token": "demo-verify-token"}


class Command(BaseCommand):
    help = (
        "Load the demo data once (idempotent): tenant 1, a simulator WhatsApp channel, options, attributes, "
        "a standard response of each kind, a finished campaign and two conversations."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--bare", action="store_true",
            help="Only tenant 1, the simulator channel, options and attributes (no responses, campaign or "
            "conversations): for tests and benchmarks that count what they create.",
        )
        parser.add_argument("--graph-stand-in", action="store_true",
                            help="Also a WhatsApp Cloud API channel pointed at the Graph API stand-in.")

    def handle(self, *args, bare=False, **options):
        ensure_required_configuration()
        tenant, _ = Tenant.objects.get_or_create(id=1, defaults={"name": "Environment"})
        loaded = []
        if options.get("graph_stand_in") and not Channel.objects.filter(channel_id=DEMO_CLOUD_CHANNEL_ID).exists():
            channel_save(
                channel=Channel(
                    channel_id=DEMO_CLOUD_CHANNEL_ID, name="WhatsApp Cloud API (Graph API stand-in)", tenant=tenant,
                    media_type=MediaType.WHATSAPP, transport=Transport.WHATSAPP_CLOUD, business_id="15550783881",
                    **DEMO_CLOUD_SETTINGS,
                ),
                endpoints=["1:session-chat"], inbound_route_by_call="1:session-chat",
            )
            loaded.append(f"channel {DEMO_CLOUD_CHANNEL_ID} (Graph API stand-in)")
        channel = Channel.objects.filter(channel_id=DEMO_CHANNEL_ID).first()
        if channel is None:
            channel = self._channel(tenant)
            loaded.append(f"channel {DEMO_CHANNEL_ID}")
        if bare:
            self._done(loaded)
            return
        if not StandardResponse.objects.filter(pk=DEMO_RESPONSES[0][0]).exists():
            self._responses(tenant)
            loaded.append(f"{len(DEMO_RESPONSES)} standard responses")
        if not Campaign.objects.filter(name=DEMO_CAMPAIGN, channel=channel).exists():
            self._campaign(channel)
            loaded.append("a finished campaign")
        if not Interaction.objects.filter(channel=channel, type="Inbound").exists():
            self._conversations(channel)
            loaded.append(f"{len(DEMO_CONVERSATIONS)} conversations")
        self._done(loaded)

    def _done(self, loaded: list[str]) -> None:
        if not loaded:
            self.stdout.write("Demo data already present.")
            return
        self.stdout.write(self.style.SUCCESS(f"Demo data loaded: tenant 1, {', '.join(loaded)}."))

    @transaction.atomic
    def _channel(self, tenant):
        return channel_save(
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

    @transaction.atomic
    def _responses(self, tenant):
        from channels_app.models import StandardResponseCategory
        from channels_app.services.standard_responses import standard_response_category_save, standard_response_save

        category = StandardResponseCategory.objects.filter(tenant=tenant, name="Demo", parent=None).first()
        if category is None:
            category = standard_response_category_save(
                category=StandardResponseCategory(tenant=tenant, name="Demo")
            )
        for response_id, name, content_type, body, structured in DEMO_RESPONSES:
            standard_response_save(response=StandardResponse(
                id=response_id, tenant=tenant, name=name, category=category, language="en",
                content_type=content_type, body=body, structured=structured,
            ))

    def _campaign(self, channel):
        # Sent here, batch by batch, so that the demo shows a finished campaign without a worker.
        from channels_app.services.campaigns import (
            campaign_create,
            campaign_keep_upload_report,
            campaign_run_batch,
            campaign_transition,
        )

        campaign, report = campaign_create(
            name=DEMO_CAMPAIGN, channel=channel, standard_response=StandardResponse.objects.get(pk="DEMO0NOTIF000001"),
            rows=DEMO_AUDIENCE,
        )
        campaign_keep_upload_report(campaign=campaign, report=report, file_name="demo-audience.csv")
        campaign_transition(campaign_id=campaign.pk, action="start")
        while campaign_run_batch(campaign_id=campaign.pk):
            pass

    def _conversations(self, channel):
        from channels_app.models import Delivery
        from channels_app.services.deliveries import delivery_attempt
        from channels_app.services.interactions import customer_message_receive, message_queue_outbound

        for client_id, nickname, question, answer in DEMO_CONVERSATIONS:
            with transaction.atomic():
                received, _ = customer_message_receive(
                    channel=channel, client_id=client_id, text=question, nickname=nickname
                )
                sent = message_queue_outbound(interaction=received.interaction, payload={"text": answer})
            # Sent now rather than by a worker, so that the transcript shows it sent.
            delivery_attempt(delivery_id=Delivery.objects.get(message=sent).pk)
