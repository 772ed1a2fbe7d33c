"""Schemathesis hooks of bench/fuzz.py and tests/test_fuzz.py.

The Third-Party Messaging API (`POST /nexus/v3/channels/{id}/messages`)
refuses every body without the HMAC of the channel's secret, so a fuzzer that
cannot sign only ever tests the signature check. This hook signs the body it is
about to send with FUZZ_CHANNEL_SECRET (the secret the fuzz run gave its
channels), unless the case is meant to break the headers themselves.
"""

import hashlib
import hmac
import json
import os

import schemathesis
from schemathesis.core import NotSet

NEXUS_PATH = "/nexus/v3/channels/{channel_id}/messages"


def hub_signature_sha256(secret: str, body: bytes) -> str:
    """`X-Hub-Signature-256` of the Third-Party Messaging API."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _headers_are_negative(case) -> bool:
    components = case.meta.components if case.meta is not None else {}
    return any(location.value == "header" and info.mode.value == "negative" for location, info in components.items())


@schemathesis.hook
def before_call(context, case, kwargs):
    secret = os.environ.get("FUZZ_CHANNEL_SECRET")
    if not secret or case.operation.path != NEXUS_PATH or _headers_are_negative(case):
        return
    if isinstance(case.body, NotSet):
        body = b""
    elif isinstance(case.body, bytes):
        body = case.body
    else:
        body = json.dumps(case.body, default=str).encode()
    kwargs["data"] = body  # sent as is, so that the signature covers the exact bytes
    case.headers = {**(case.headers or {}), "X-Hub-Signature-256": hub_signature_sha256(secret, body)}
