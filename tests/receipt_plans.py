"""Delivery receipts of the Third-Party Messaging API for many outgoing
messages (pure, no database), shared by tests/test_receipts.py and
bench/receipts.py.

Each message gets a story: one or more receipts (Delivered, Removed, or
Failed with reason codes of the API's table), in the order the third party
sends them. The in-order stream is every story in its own order (all first
receipts, then all second ones, ...); the disordered stream is the same
receipts plus a fraction of them sent twice, shuffled. Both must leave every
message in the same final state.
"""

import json
import random
from dataclasses import dataclass

STATUSES = ("Delivered", "Removed", "Failed")
REASON_CODES = (305, 310, 350, 500, 510, 512, 520, 530)


@dataclass(frozen=True)
class Receipt:
    external_id: str
    status: str
    reasons: tuple = ()  # ((code, message), ...)

    def message(self) -> dict:
        """The receipt as one message of a request body."""
        message = {"type": "Receipt", "status": self.status, "channel": {"messageId": self.external_id}}
        if self.reasons:
            message["reasons"] = [{"code": code, "message": text} if text else {"code": code}
                                  for code, text in self.reasons]
        return message


def request_body(receipts: list[Receipt]) -> bytes:
    return json.dumps({"messages": [receipt.message() for receipt in receipts]}).encode()


def external_id(number: int) -> str:
    return f"ext-{number}"


def random_receipt(rng: random.Random, external: str) -> Receipt:
    # Mostly Delivered, as from a real third party, so that every final state is common.
    status = rng.choices(STATUSES, weights=(6, 1.5, 2.5))[0]
    if status != "Failed":
        return Receipt(external, status)
    codes = rng.sample(REASON_CODES, rng.choice((0, 1, 1, 1, 2)))
    return Receipt(external, status, tuple((code, rng.choice(("", f"reason {code}"))) for code in codes))


def stories(rng: random.Random, *, messages: int, receipts: int) -> list[list[Receipt]]:
    """`receipts` receipts over `messages` messages (ext-0 ...), each message at least one."""
    assert receipts >= messages
    counts = [1] * messages
    for _ in range(receipts - messages):
        counts[rng.randrange(messages)] += 1
    return [[random_receipt(rng, external_id(number)) for _ in range(count)] for number, count in enumerate(counts)]


def in_order(plan: list[list[Receipt]]) -> list[Receipt]:
    """Each story in its own order: the first receipt of every message, then the second ones, ..."""
    longest = max(len(story) for story in plan)
    return [story[step] for step in range(longest) for story in plan if step < len(story)]


def disordered(rng: random.Random, receipts: list[Receipt], *, duplicated: float = 0.2) -> list[Receipt]:
    """The same receipts, `duplicated` of them sent twice, all shuffled."""
    stream = receipts + rng.sample(receipts, round(duplicated * len(receipts)))
    rng.shuffle(stream)
    return stream


def batches(rng: random.Random, receipts: list[Receipt], *, largest: int) -> list[list[Receipt]]:
    """The stream cut into requests of 1..`largest` receipts, keeping the order."""
    cut, start = [], 0
    while start < len(receipts):
        size = rng.randint(1, largest)
        cut.append(receipts[start:start + size])
        start += size
    return cut
