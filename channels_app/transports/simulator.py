"""The built-in hub simulator: accepts every message and answers with an id.

Its receipts and automatic customer replies are sent by Celery tasks through
the same services a real third party's requests reach (see `tasks.py`)."""

from channels_app.transports.base import OutgoingMessage, SendOutcome, SendResult


class SimulatorTransport:
    def send(self, message: OutgoingMessage) -> SendResult:
        return SendResult(SendOutcome.ACCEPTED, external_id=f"sim-{message.message_id}", status_code=200)
