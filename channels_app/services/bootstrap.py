"""What every database of this server holds from its first migration on."""

from django.db import transaction


def ensure_required_configuration(**kwargs) -> None:
    """post_migrate receiver: the catalog's options, the business attributes the
    specification requires, the default WhatsApp role groups and the periodic
    tasks (idempotent)."""
    from channels_app.services.business_attributes import business_attributes_ensure_required
    from channels_app.services.options import options_ensure_catalog
    from channels_app.services.roles import roles_ensure_default_groups
    from channels_app.services.schedules import schedules_ensure

    with transaction.atomic(using=kwargs.get("using", "default")):
        options_ensure_catalog()
        business_attributes_ensure_required()
        roles_ensure_default_groups()
        schedules_ensure()
