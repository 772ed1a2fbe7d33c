from channels_app.models.configuration import (
    BusinessAttribute,
    BusinessAttributeValue,
    Channel,
    Endpoint,
    OptionValue,
    Tenant,
)

__all__ = [
    "BusinessAttribute",
    "BusinessAttributeValue",
    "Channel",
    "Endpoint",
    "OptionValue",
    "Tenant",
]
