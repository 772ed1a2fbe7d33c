"""Rows for the data lifecycle's tests: a contact's conversation with messages, deliveries, attempts and a
stored file, as the server keeps them, aged as a test needs."""

from datetime import datetime

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from channels_app.models import (
    Campaign,
    CampaignRecipient,
    Delivery,
    DeliveryAttempt,
    Interaction,
    InteractionState,
    Message,
    MessageAttachment,
    MessageAttachmentStatus,
)
from tests.factories import InteractionFactory


def conversation(channel, *, client_id: str = "15556667777", ended_at: datetime | None = None,
                 delivery_state: str = "delivered", text: str = "Hello, my card 4111 is lost",
                 with_file: bool = True) -> Interaction:
    """An interaction with a customer message (with a stored file when `with_file`) and an agent answer with
    its delivery and one attempt; ended at `ended_at` (None: still open)."""
    interaction = InteractionFactory(channel=channel, client_id=client_id, outbound=False)
    inbound = Message.objects.create(interaction=interaction, channel=channel, direction="inbound", text=text,
                                     status="received")
    if with_file:
        name = default_storage.save(f"inbound/test/{interaction.pk}.jpg", ContentFile(b"\xff\xd8\xff picture"))
        thumbnail = default_storage.save(f"thumbnails/test/{interaction.pk}.jpg", ContentFile(b"\xff\xd8\xff"))
        MessageAttachment.objects.create(message=inbound, source_url="https://files.example/p.jpg",
                                         file_name="passport.jpg", content_type="image/jpeg", size=16, file=name,
                                         thumbnail=thumbnail, status=MessageAttachmentStatus.STORED)
    outbound = Message.objects.create(interaction=interaction, channel=channel, direction="outbound",
                                      text="We are on it", status="sent")
    delivery = Delivery.objects.create(message=outbound, channel=channel, state=delivery_state,
                                       next_attempt_at=timezone.now(), attempts=1)
    DeliveryAttempt.objects.create(delivery=delivery, number=1, started_at=timezone.now(), outcome="accepted",
                                   status_code=200, response_excerpt=f'{{"to": "{client_id}"}}')
    if ended_at is not None:
        Interaction.objects.filter(pk=interaction.pk).update(state=InteractionState.ENDED, ended_at=ended_at)
        interaction.refresh_from_db()
    return interaction


def stored_names(interaction_or_message_ids) -> list[str]:
    rows = MessageAttachment.objects.filter(message__interaction__in=interaction_or_message_ids)
    return [name for pair in rows.values_list("file", "thumbnail") for name in pair if name]


def campaign_with_recipients(channel, response, *, state: str, finished_at: datetime | None,
                             client_ids=("15550000001", "15550000002")) -> Campaign:
    campaign = Campaign.objects.create(name=f"Campaign {state}", channel=channel, standard_response=response,
                                       state=state, finished_at=finished_at)
    CampaignRecipient.objects.bulk_create([
        CampaignRecipient(campaign=campaign, row_number=number, client_id=client_id,
                          contact_fields={"FirstName": "Ann"}, custom_properties={"Bill": "12"})
        for number, client_id in enumerate(client_ids, start=1)
    ])
    return campaign
