"""The periodic tasks, stored with django-celery-beat so operators see them in the admin."""

from django_celery_beat.models import IntervalSchedule, PeriodicTask

PERIODIC_TASKS = {
    # name: (task, every seconds)
    "Expire idle chat sessions": ("channels_app.expire_sessions", 60),
    "Relay due webhook deliveries": ("channels_app.relay_due_deliveries", 5),
    "Start and watch campaigns": ("channels_app.campaigns_tick", 5),
    "Fold campaign report figures": ("channels_app.campaign_reports_fold", 15),  # campaign_reports.REPORT_FOLD_SECONDS
    "Process WhatsApp webhooks left unprocessed": ("channels_app.whatsapp_inbox_pending", 60),
    "Purge what tenants keep no longer (retention)": ("channels_app.purge", 24 * 60 * 60),
    # The reports' figures (services/rollups.py): at most this far behind the messages.
    "Fold the reports' figures": ("channels_app.reports_fold", 30),
}


def schedules_ensure() -> None:
    for name, (task, seconds) in PERIODIC_TASKS.items():
        schedule, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "interval": schedule})
