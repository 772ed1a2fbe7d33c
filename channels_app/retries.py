"""The retry decision for webhook deliveries (pure, no database).

The spec: a webhook answered with 5xx (or not answered) is redelivered
"according to the configuration for retry timeout and retry attempts"; 4xx is
not retried. Redeliveries back off exponentially, spread so that the last one
falls at the end of the retry timeout: with timeout T and R redeliveries the
waits are b, 2b, 4b, ... with b = T / (2**R - 1).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from channels_app.transports.base import SendOutcome


@dataclass(frozen=True)
class RetryDecision:
    next_attempt_at: datetime | None  # None: no further attempt
    final_state: str | None  # "delivered", "failed" or None while retrying


def backoff_delays(*, retry_attempts: int, retry_timeout_seconds: int) -> list[float]:
    """The waits, in seconds, before redelivery 1..retry_attempts."""
    if retry_attempts <= 0:
        return []
    base = retry_timeout_seconds / (2**retry_attempts - 1)
    return [base * 2**index for index in range(retry_attempts)]


def retry_decision(
    *,
    outcome: SendOutcome,
    attempts_made: int,
    first_attempt_at: datetime,
    now: datetime,
    retry_attempts: int,
    retry_timeout_seconds: int,
) -> RetryDecision:
    if outcome == SendOutcome.ACCEPTED:
        return RetryDecision(None, "delivered")
    if outcome == SendOutcome.FAILED:
        return RetryDecision(None, "failed")
    delays = backoff_delays(retry_attempts=retry_attempts, retry_timeout_seconds=retry_timeout_seconds)
    redeliveries_made = attempts_made - 1
    if redeliveries_made >= len(delays):
        return RetryDecision(None, "failed")
    due = first_attempt_at + timedelta(seconds=sum(delays[: redeliveries_made + 1]))
    deadline = first_attempt_at + timedelta(seconds=retry_timeout_seconds)
    if due > deadline + timedelta(seconds=1):
        return RetryDecision(None, "failed")
    return RetryDecision(max(due, now), None)
