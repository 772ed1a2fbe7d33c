from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import m2m_changed, post_delete, post_migrate, post_save


class ChannelsAppConfig(AppConfig):
    default = True  # the module holds the admin's config too
    name = "channels_app"
    verbose_name = "Digital Messaging Server"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from channels_app.models import OptionValue
        from channels_app.option_values import invalidate_option_cache
        from channels_app.services.bootstrap import ensure_required_configuration

        post_migrate.connect(ensure_required_configuration, sender=self)
        # Every write path (services, admin inlines, cascades) drops this process's option cache.
        post_save.connect(invalidate_option_cache, sender=OptionValue)
        post_delete.connect(invalidate_option_cache, sender=OptionValue)

        from channels_app.audit import audit_register
        from channels_app.services.tokens import password_change_watch

        audit_register()  # every change of configuration writes an audit entry
        password_change_watch()  # a new password revokes the user's API tokens
        from channels_app.authentication import credentials_cache_watch

        credentials_cache_watch()  # a change of who may do what reaches this process's requests at once
        from channels_app.models import Channel, Endpoint
        from channels_app.selectors import channels_by_id

        for sender in (Channel, Endpoint):  # a channel is kept with its endpoints
            post_save.connect(channels_by_id.clear, sender=sender,
                              dispatch_uid=f"channels-by-id-{sender.__name__}-save")
            post_delete.connect(channels_by_id.clear, sender=sender,
                                dispatch_uid=f"channels-by-id-{sender.__name__}-delete")
        from channels_app.models import Queue
        from channels_app.selectors import queues_by_key

        post_save.connect(queues_by_key.clear, sender=Queue, dispatch_uid="queues-by-key-save")
        post_delete.connect(queues_by_key.clear, sender=Queue, dispatch_uid="queues-by-key-delete")
        from channels_app.models import Attachment, StandardResponse
        from channels_app.selectors import standard_responses_for_sending

        for sender in (StandardResponse, Attachment):  # a response's attachments are sent with it
            post_save.connect(standard_responses_for_sending.clear, sender=sender,
                              dispatch_uid=f"kept-{sender.__name__}-save")
            post_delete.connect(standard_responses_for_sending.clear, sender=sender,
                                dispatch_uid=f"kept-{sender.__name__}-delete")
        m2m_changed.connect(standard_responses_for_sending.clear, sender=StandardResponse.attachments.through,
                            dispatch_uid="kept-standard-response-attachments")


class DmsAdminConfig(admin_apps.AdminConfig):
    """The stock admin app with the project's site (a dashboard home page, configuration grouped by task)."""

    default = False
    # Outside the admin package: importing the site must not register the model admins (they register on it).
    default_site = "channels_app.admin_site.DmsAdminSite"
