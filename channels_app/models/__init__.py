from channels_app.models.configuration import (
    BusinessAttribute,
    BusinessAttributeValue,
    Channel,
    Endpoint,
    OptionValue,
    Tenant,
)
from channels_app.models.standard_responses import Attachment, StandardResponse, StandardResponseCategory

__all__ = [
    "Attachment",
    "StandardResponse",
    "StandardResponseCategory",
    "BusinessAttribute",
    "BusinessAttributeValue",
    "Channel",
    "Endpoint",
    "OptionValue",
    "Tenant",
]
