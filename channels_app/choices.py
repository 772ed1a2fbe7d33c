"""Enumerations shared by models, services and interfaces."""

from django.db import models


class MediaType(models.TextChoices):
    WHATSAPP = "whatsapp", "WhatsApp"
    ABC = "abc", "Apple Messages for Business"
    SMS = "sms", "SMS"
    EMAIL = "email", "E-mail"


class Transport(models.TextChoices):
    WEBHOOK = "webhook", "Third-Party Messaging webhook"
    SIMULATOR = "simulator", "Built-in hub simulator"


class BusinessAttributeType(models.TextChoices):
    INTERACTION_SUBTYPE = "interaction_subtype", "Interaction Subtype"
    CONTACT_ATTRIBUTES = "contact_attributes", "Contact Attributes"
    DISPOSITION_CODE = "disposition_code", "Disposition Code"
    EMOJIS = "emojis", "Emojis"
    CUSTOM = "custom", "Custom"


# The WhatsApp role permissions of the specification ("Role permissions" in
# the WhatsApp guide), as Django permission codenames on the Channel model.
WHATSAPP_ROLE_PERMISSIONS = (
    ("whatsapp_can_use", "WhatsApp - Can Use (InteractionWorkspace.WhatsApp.canUse)"),
    ("whatsapp_can_send_files", "WhatsApp - Can Send Files (InteractionWorkspace.WhatsApp.canSendFiles)"),
    (
        "whatsapp_can_change_attachments_in_notification",
        "WhatsApp - Can Change Attachments in Notification "
        "(InteractionWorkspace.WhatsApp.canChangeAttachmentsInNotification)",
    ),
    (
        "whatsapp_can_change_attachments_in_reply_button",
        "WhatsApp - Can Change Attachments in Reply Button "
        "(InteractionWorkspace.WhatsApp.canChangeAttachmentsInReplyButton)",
    ),
    (
        "whatsapp_can_create_new_session_from_other_media",
        "WhatsApp - Can Create new session from other media "
        "(InteractionWorkspace.WhatsApp.canCreateNewSessionFromOtherMedia)",
    ),
)
