"""Admin for customers' attachments: their fetch status, the reason of a failure, and "fetch again"
(through the service)."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from channels_app.admin.conversations import ReadOnlyAdminMixin
from channels_app.admin.scoping import ScopedModelAdmin
from channels_app.models import MessageAttachment, MessageAttachmentStatus
from channels_app.services.media import message_attachments_refetch
from channels_app.signed_links import file_url


@admin.register(MessageAttachment)
class MessageAttachmentAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    list_display = ["id", "file_name", "status", "reason", "size", "content_type", "message_link", "attempts",
                    "updated_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["file_name", "source_url", "message__id", "message__interaction__id"]
    list_select_related = ["message"]
    actions = ["fetch_again"]
    readonly_fields = ["message_link", "position", "source_url", "declared_content_type", "declared_size",
                       "file_name", "content_type", "size", "download", "status", "reason", "attempts",
                       "created_at", "updated_at", "stored_at"]
    fields = readonly_fields

    @admin.display(description="message")
    def message_link(self, attachment):
        url = reverse("admin:channels_app_interaction_change", args=[attachment.message.interaction_id])
        return format_html('<a href="{}">{}</a>', url, attachment.message_id)

    @admin.display(description="file")
    def download(self, attachment):
        if attachment.status != MessageAttachmentStatus.STORED or not attachment.file:
            return "-"
        url = file_url(storage_name=attachment.file.name, content_type=attachment.content_type,
                       file_name=attachment.file_name)
        return format_html('<a href="{}">{}</a>', url, attachment.file_name)

    @admin.action(description="Fetch the selected failed attachments again")
    def fetch_again(self, request, queryset):
        count = message_attachments_refetch(attachment_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} attachment(s) will be fetched again.", messages.SUCCESS)

    def has_change_permission(self, request, obj=None):
        # The change list needs it for the action; the change form stays read-only (every field is).
        return request.user.has_perm("channels_app.change_messageattachment")

    def has_delete_permission(self, request, obj=None):
        return False
