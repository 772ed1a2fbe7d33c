from channels_app.models.audit import AuditAction, AuditEntry
from channels_app.models.campaigns import Campaign, CampaignCounter, CampaignRecipient, CampaignState
from channels_app.models.configuration import (
    BusinessAttribute,
    BusinessAttributeValue,
    Channel,
    Endpoint,
    Membership,
    OptionValue,
    Tenant,
    generate_channel_secret,
)
from channels_app.models.conversations import (
    Contact,
    EarlyReceipt,
    Interaction,
    InteractionState,
    InteractionSubtype,
    InteractionType,
    Message,
    MessageDirection,
    MessageStatus,
)
from channels_app.models.deliveries import Delivery, DeliveryAttempt, DeliveryState
from channels_app.models.media import MessageAttachment, MessageAttachmentStatus
from channels_app.models.standard_responses import Attachment, StandardResponse, StandardResponseCategory

__all__ = [
    "AuditAction",
    "AuditEntry",
    "Campaign",
    "CampaignCounter",
    "CampaignRecipient",
    "CampaignState",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryState",
    "Contact",
    "EarlyReceipt",
    "Interaction",
    "InteractionState",
    "InteractionSubtype",
    "InteractionType",
    "Message",
    "MessageDirection",
    "MessageStatus",
    "MessageAttachment",
    "MessageAttachmentStatus",
    "Attachment",
    "StandardResponse",
    "StandardResponseCategory",
    "BusinessAttribute",
    "BusinessAttributeValue",
    "Channel",
    "Endpoint",
    "Membership",
    "OptionValue",
    "Tenant",
    "generate_channel_secret",
]
