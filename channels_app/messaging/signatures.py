"""Signatures of the Third-Party Messaging API (pure, no database).

`X-Hub-Signature: sha1=<hex HMAC-SHA1 of the raw body>` (the spec), its
SHA-256 form `X-Hub-Signature-256: sha256=<hex>`, and the Standard Webhooks
headers (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64
HMAC-SHA256 of "id.timestamp.body">`) that let receivers refuse replays.
The key is always the channel's secret.
"""

import base64
import hmac

# hmac.digest: OpenSSL's one-shot HMAC, without the hmac.HMAC object that hmac.new builds in Python (three
# signatures a webhook).


def hub_signature_sha1(secret: str, body: bytes) -> str:
    return "sha1=" + hmac.digest(secret.encode(), body, "sha1").hex()


def hub_signature_sha256(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.digest(secret.encode(), body, "sha256").hex()


def standard_webhook_signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.digest(secret.encode(), signed, "sha256")).decode()


def signed_headers(*, secret: str, body: bytes, webhook_id: str, timestamp: int) -> dict[str, str]:
    """Every signature header of an outgoing webhook."""
    return {
        "X-Hub-Signature": hub_signature_sha1(secret, body),
        "X-Hub-Signature-256": hub_signature_sha256(secret, body),
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_webhook_signature(secret, webhook_id, timestamp, body),
    }


def verify_hub_signature(*, secret: str, body: bytes, sha1_header: str | None, sha256_header: str | None) -> bool:
    """True when either header carries the exact signature of `body` (compared in constant time)."""
    if sha256_header:
        return hmac.compare_digest(sha256_header.encode(), hub_signature_sha256(secret, body).encode())
    if sha1_header:
        return hmac.compare_digest(sha1_header.encode(), hub_signature_sha1(secret, body).encode())
    return False
