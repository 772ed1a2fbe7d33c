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
    WHATSAPP_CLOUD = "whatsapp_cloud", "WhatsApp Cloud API (Meta)"


class ContentType(models.TextChoices):
    """Content types of a standard response (API.md, "Structured content")."""

    TEXT = "text", "Plain text"
    NOTIFICATION = "notification", "WhatsApp notification (template)"
    RICH_MEDIA = "rich_media", "WhatsApp rich media notification"
    REPLY_BUTTONS = "reply_buttons", "WhatsApp interactive reply buttons"
    LIST = "list", "WhatsApp interactive list message"
    ABC_QUICK_REPLIES = "abc_quick_replies", "Apple quick replies"
    ABC_LIST_PICKER = "abc_list_picker", "Apple single-selection list"
    ABC_CAROUSEL = "abc_carousel", "Apple carousel"


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

# Calling `POST /esp` (API.md, "Who may do what": `channels_app.use_esp`).
USE_ESP_PERMISSION = ("use_esp", "Can call ESP (POST /esp: InviteToChat, ValidateContact)")
