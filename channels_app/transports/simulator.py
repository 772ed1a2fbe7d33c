"""The built-in hub simulator: accepts every message and answers with an id,
then plays the third party's side of it (a receipt, an automatic customer
reply) a second later, through the same services a real third party's
requests reach (`services/simulator.py`, run by a task published by name)."""

from channels_app.publishing import SIMULATOR_EMIT, publish
from channels_app.transports.base import OutgoingMessage, SendOutcome, SendResult


class SimulatorTransport:
    def send(self, message: OutgoingMessage) -> SendResult:
        return SendResult(SendOutcome.ACCEPTED, external_id=f"sim-{message.message_id}", status_code=200)

    def accepted(self, message_ids: list[str]) -> None:
        # One task for the messages a dispatcher's batch sent: a task each cost the dispatcher a publish and the
        # worker a task's overhead per message, more than the simulated receipt itself.
        if message_ids:
            publish(SIMULATOR_EMIT, *message_ids, countdown=1)
