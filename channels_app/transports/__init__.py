"""Transports by channel `transport` (a plain dict registry)."""

from channels_app.choices import Transport as TransportName
from channels_app.transports.base import OutgoingMessage, SendOutcome, SendResult, Transport
from channels_app.transports.simulator import SimulatorTransport
from channels_app.transports.webhook import WebhookTransport
from channels_app.transports.whatsapp_cloud import WhatsAppCloudTransport

TRANSPORTS: dict[str, Transport] = {
    TransportName.WEBHOOK: WebhookTransport(),
    TransportName.SIMULATOR: SimulatorTransport(),
    TransportName.WHATSAPP_CLOUD: WhatsAppCloudTransport(),
}

__all__ = ["TRANSPORTS", "OutgoingMessage", "SendOutcome", "SendResult", "Transport"]
