"""The transport interface: how a message leaves for a channel's third party."""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True)
class OutgoingMessage:
    """Everything a transport needs, as plain values (no ORM objects)."""

    message_id: str
    interaction_id: str
    channel_id: str
    media_type: str
    business_id: str
    client_id: str
    payload: dict
    webhook_url: str = ""
    secret: str = ""
    trace_id: str = ""

    def webhook_body(self) -> dict:
        """The webhook body of API.md: the channel block, then the content."""
        return {
            "channel": {
                "id": self.channel_id,
                "type": self.media_type,
                "from": {"id": self.business_id},
                "to": {"id": self.client_id},
                "messageId": self.message_id,
            },
            **self.payload,
        }


class SendOutcome(StrEnum):
    ACCEPTED = "accepted"  # the third party took it (2xx with a messageId)
    RETRY = "retry"  # 5xx, timeout, connection error: try again later
    FAILED = "failed"  # 4xx or a refusal: never retried


@dataclass(frozen=True)
class SendResult:
    outcome: SendOutcome
    external_id: str = ""
    status_code: int | None = None
    error: str = ""
    latency_ms: float = 0.0
    response_excerpt: str = field(default="", repr=False)


class Transport(Protocol):
    def send(self, message: OutgoingMessage) -> SendResult:
        """Hand one message to the third party; never raises for the third party's errors."""

    def accepted(self, message_ids: list[str]) -> None:
        """Called once the acceptance of these messages is committed (the simulator plays the third party's
        side from here; a real network has nothing to do)."""
