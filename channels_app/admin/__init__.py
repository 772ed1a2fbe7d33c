from channels_app.admin import (  # noqa: F401  (registers the model admins)
    access,
    audit,
    campaigns,
    configuration,
    conversations,
    deliveries,
    media,
    reports,
    routing,
    segments,
    standard_responses,
    whatsapp,
)
