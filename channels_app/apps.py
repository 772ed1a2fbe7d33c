from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ChannelsAppConfig(AppConfig):
    name = "channels_app"
    verbose_name = "Digital Messaging Server"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from channels_app.services.bootstrap import ensure_required_configuration

        post_migrate.connect(ensure_required_configuration, sender=self)
