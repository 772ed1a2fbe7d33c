"""Forged and replayed requests on `POST /nexus/v3/channels/{id}/messages`
(pure, no database), shared by tests/test_forgery.py and bench/forgery.py.

A request of the Third-Party Messaging API is authentic when `X-Hub-Signature`
(`sha1=<hex HMAC-SHA1 of the raw body>`) or `X-Hub-Signature-256`
(`sha256=<hex>`) is exactly the signature of the body with the channel's
secret. Every attack below is one an attacker without the secret can make,
and every one must be answered 401 (API.md: "401 bad or missing signature")
with nothing stored. A replay (a valid request sent again, byte for byte) is
the one an attacker can make that passes the signature: it must return the
stored id and store nothing new (a repeated channel.messageId).

The generator is a seeded `random.Random`, so a failing attack is found again
from its seed and index.
"""

import hashlib
import hmac
import json
import random
from collections.abc import Callable
from dataclasses import dataclass

SHA1 = "X-Hub-Signature"
SHA256 = "X-Hub-Signature-256"
HEX = "0123456789abcdef"


@dataclass(frozen=True)
class SignedRequest:
    kind: str
    body: bytes
    headers: dict  # HTTP header name -> value (the signature headers only)


def signature(secret: str, body: bytes, algorithm: str) -> str:
    """The header value the API accepts: `sha1=<hex>` or `sha256=<hex>`."""
    return f"{algorithm}=" + hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).hexdigest()


def header_for(algorithm: str) -> str:
    return SHA1 if algorithm == "sha1" else SHA256


def signed(secret: str, body: bytes, algorithm: str = "sha1", kind: str = "valid") -> SignedRequest:
    return SignedRequest(kind, body, {header_for(algorithm): signature(secret, body, algorithm)})


def message_body(rng: random.Random, unique: str, business_id: str) -> bytes:
    """A well-formed request body of one of the three message types; `unique`
    makes its channel.messageId new, so that storing it would add a row."""
    client = f"1650{rng.randrange(10**7):07d}"
    sender = {"messageId": unique, "from": {"id": client, "nickname": "Mallory"}, "to": {"id": business_id}}
    kind = rng.choice(("Text", "Email", "Receipt"))
    if kind == "Text":
        message = {"type": "Text", "text": f"forged {unique} " + "x" * rng.randrange(200), "channel": sender}
    elif kind == "Email":
        message = {"type": "Email", "subject": f"forged {unique}", "channel": sender,
                   "content": [{"type": "text", "text": "plain"}, {"type": "html", "text": "<p>html</p>"}]}
    else:  # a receipt for an id no message has: if accepted it would be kept as an early receipt
        message = {"type": "Receipt", "status": rng.choice(("Delivered", "Removed", "Failed")),
                   "reasons": [{"code": 350, "message": "forged"}], "channel": {"messageId": f"ext-{unique}"}}
    return json.dumps({"messages": [message]}).encode()


def _algorithm(rng: random.Random) -> str:
    return rng.choice(("sha1", "sha256"))


def _random_hex(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(HEX) for _ in range(length))


def _digest_length(algorithm: str) -> int:
    return 40 if algorithm == "sha1" else 64


# --- the attacks: each takes (rng, secret, body, other valid request) and returns headers and body ---------------


def random_signature(rng, secret, body, other):
    algorithm = _algorithm(rng)
    return {header_for(algorithm): f"{algorithm}=" + _random_hex(rng, _digest_length(algorithm))}, body


def wrong_secret(rng, secret, body, other):
    algorithm = _algorithm(rng)
    variant = rng.randrange(4)
    if variant == 0:  # another secret of the same shape (as the other channel's would be)
        wrong = _random_hex(rng, len(secret))
    elif variant == 1:  # the secret with one character changed
        position = rng.randrange(len(secret))
        wrong = secret[:position] + rng.choice([c for c in HEX if c != secret[position]]) + secret[position + 1:]
    elif variant == 2:  # no secret at all
        wrong = ""
    else:  # a valid SHA-1 signature beside a forged SHA-256 one: the SHA-256 header is the one checked
        return {SHA1: signature(secret, body, "sha1"),
                SHA256: signature(_random_hex(rng, len(secret)), body, "sha256")}, body
    return {header_for(algorithm): signature(wrong, body, algorithm)}, body


def body_byte_changed(rng, secret, body, other):
    """Signed, then one byte of the body changed (a man in the middle)."""
    algorithm = _algorithm(rng)
    headers = {header_for(algorithm): signature(secret, body, algorithm)}
    position = rng.randrange(len(body))
    replacement = rng.choice([b for b in range(256) if b != body[position]])
    return headers, body[:position] + bytes([replacement]) + body[position + 1:]


def digest_byte_changed(rng, secret, body, other):
    algorithm = _algorithm(rng)
    prefix, digest = signature(secret, body, algorithm).split("=", 1)
    position = rng.randrange(len(digest))
    digest = digest[:position] + rng.choice([c for c in HEX if c != digest[position]]) + digest[position + 1:]
    return {header_for(algorithm): f"{prefix}={digest}"}, body


def truncated_digest(rng, secret, body, other):
    algorithm = _algorithm(rng)
    prefix, digest = signature(secret, body, algorithm).split("=", 1)
    return {header_for(algorithm): f"{prefix}={digest[:rng.randrange(len(digest))]}"}, body


def uppercase_digest(rng, secret, body, other):
    """The right digest in upper case: the contract is lower-case hex, compared exactly."""
    algorithm = _algorithm(rng)
    while not any(c.isalpha() for c in signature(secret, body, algorithm).split("=", 1)[1]):
        body += b" "  # all-digit digests are a 1 in 10**9 case: change the body until the case matters
    prefix, digest = signature(secret, body, algorithm).split("=", 1)
    if rng.random() < 0.5:
        digest = digest.upper()
    else:  # upper-case only some of the letters
        digest = "".join(c.upper() if c.isalpha() and rng.random() < 0.5 else c for c in digest)
        if digest == digest.lower():
            digest = digest.upper()
    return {header_for(algorithm): f"{prefix}={digest}"}, body


# (Not " sha1=": HTTP servers strip the whitespace around a header value, so that one is authentic.)
WRONG_PREFIXES = {
    "sha1": ("sha256=", "SHA1=", "Sha1=", "sha1:", "sha1 =", "sha=", "md5=", "", "sha1==", "hmac-sha1="),
    "sha256": ("sha1=", "SHA256=", "sha256:", "sha-256=", "sha256 =", "sha=", "", "sha256==", "hmac-sha256="),
}


def wrong_prefix(rng, secret, body, other):
    algorithm = _algorithm(rng)
    digest = signature(secret, body, algorithm).split("=", 1)[1]
    if rng.random() < 0.2:  # the right value under the other algorithm's header
        return {header_for("sha256" if algorithm == "sha1" else "sha1"): f"{algorithm}={digest}"}, body
    return {header_for(algorithm): rng.choice(WRONG_PREFIXES[algorithm]) + digest}, body


def missing_header(rng, secret, body, other):
    variant = rng.randrange(4)
    if variant == 0:
        return {}, body
    if variant == 1:  # present but empty
        return {rng.choice((SHA1, SHA256)): ""}, body
    if variant == 2:  # a look-alike header name
        return {rng.choice(("X-Hub-Signatures", "X-Hub-Signature-1", "Hub-Signature", "X-Signature")):
                signature(secret, body, "sha1")}, body
    return {rng.choice((SHA1, SHA256)): rng.choice(("sha1=", "sha256=", "="))}, body


def empty_body(rng, secret, body, other):
    variant = rng.randrange(4)
    if variant == 0:
        return {}, b""
    if variant == 1:  # the signature of a real request, with its body left out
        return dict(other.headers), b""
    if variant == 2:
        algorithm = _algorithm(rng)
        return {header_for(algorithm): f"{algorithm}=" + _random_hex(rng, _digest_length(algorithm))}, b""
    algorithm = _algorithm(rng)  # the empty body signed with a wrong secret
    return {header_for(algorithm): signature(_random_hex(rng, len(secret)), b"", algorithm)}, b""


def swapped_signature(rng, secret, body, other):
    """The valid signature of another request, on this body (cut and paste)."""
    return dict(other.headers), body


FORGERIES: dict[str, Callable] = {
    "random_signature": random_signature,
    "wrong_secret": wrong_secret,
    "body_byte_changed": body_byte_changed,
    "digest_byte_changed": digest_byte_changed,
    "truncated_digest": truncated_digest,
    "uppercase_digest": uppercase_digest,
    "wrong_prefix": wrong_prefix,
    "missing_header": missing_header,
    "empty_body": empty_body,
    "swapped_signature": swapped_signature,
}
KINDS = (*FORGERIES, "replay")


def valid_requests(rng: random.Random, *, secret: str, business_id: str, count: int, tag: str = "valid"):
    """`count` authentic requests, each one customer message (Text or Email) with a new channel.messageId."""
    requests = []
    while len(requests) < count:
        body = message_body(rng, f"{tag}-{len(requests)}", business_id)
        if b'"Receipt"' in body:
            continue  # the originals are customer messages: their replays must find the stored message
        requests.append(signed(secret, body, _algorithm(rng)))
    return requests


def attacks(rng: random.Random, *, secret: str, business_id: str, originals: list[SignedRequest], count: int,
            tag: str = "atk") -> list[SignedRequest]:
    """`count` attacks in a random order, every kind of KINDS in turn (so each
    gets count / len(KINDS), give or take one); replays resend `originals`."""
    generated = []
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        if kind == "replay":
            original = rng.choice(originals)
            generated.append(SignedRequest("replay", original.body, dict(original.headers)))
            continue
        body = message_body(rng, f"{tag}-{index}", business_id)
        headers, body = FORGERIES[kind](rng, secret, body, rng.choice(originals))
        generated.append(SignedRequest(kind, body, headers))
    rng.shuffle(generated)
    return generated


# --- poisoned text, correctly signed (the text rules, channels_app/text_rules.py) ------------------------------------

# A lone surrogate (high, low, at the start, in the middle, at the end) or a NUL character, as an attacker who holds
# the secret (or a customer whose text the hub relays as it is) can send them: each must be answered 400 with status
# 520 and store nothing; a 500 with the debug page was the answer before the text rules.
POISONS = ("\ud800", "\udbff", "\udc00", "\udfff", "a\ud83d", "\ude00b", "x\ud800y", "\x00", "a\x00b", "\udfff\ud800")


def _strings(value, path=()):
    """(path, value) of every string (and every key) of a JSON value."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield (*path, ("key", key)), key
            yield from _strings(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index))


def _poisoned(value, target, poison: str):
    """`value` with the string (or key) at `target` given `poison` at a random place."""
    if not target:
        return value + poison if isinstance(value, str) else value
    step, rest = target[0], target[1:]
    if isinstance(step, tuple):  # a key
        _, key = step
        return {(key + poison if k == key else k): item for k, item in value.items()}
    copied = value.copy()
    copied[step] = _poisoned(value[step], rest, poison)
    return copied


def poisoned_requests(rng: random.Random, *, secret: str, business_id: str, count: int,
                      tag: str = "poison") -> list[SignedRequest]:
    """`count` correctly signed requests, each with one string or key (any field of any message type) carrying
    a lone surrogate or a NUL character, written the way JSON escapes it (\\ud800, \\u0000)."""
    requests = []
    for index in range(count):
        body = json.loads(message_body(rng, f"{tag}-{index}", business_id))
        target, _text = rng.choice(list(_strings(body)))
        poison = POISONS[index % len(POISONS)]
        raw = json.dumps(_poisoned(body, target, poison)).encode()  # json.dumps writes them as escapes
        requests.append(signed(secret, raw, _algorithm(rng), kind="surrogate" if "\x00" not in poison else "nul"))
    return requests


# --- internal addresses (the outbound address rules, channels_app/outbound.py) ---------------------------------------


def internal_address_spellings(port: int) -> list[str]:
    """Webhook URLs an attacker would try to reach a service on this machine at `port` (127.0.0.1) or an
    internal one: every spelling the resolver takes for a loopback address, IPv4-mapped IPv6, and the other
    internal ranges. With WEBHOOK_ALLOWED_NETWORKS empty, none may be reached."""
    loopback = ["127.0.0.1", "localhost", "127.1", "127.0.1", "2130706433", "0177.0.0.1", "0177.1", "0x7f.1",
                "0x7f000001", "0x7f.0.0.1", "017700000001", "127.000.000.001", "[::1]", "[::ffff:127.0.0.1]",
                "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:127.0.0.1]", "[64:ff9b::127.0.0.1]", "[2002:7f00:1::1]", "0",
                "0.0.0.0", "[::]", "127.255.255.254"]
    internal = ["10.0.0.1", "172.16.0.1", "192.168.0.1", "169.254.169.254", "100.64.0.1", "224.0.0.1",
                "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.0.8", "198.18.0.1", "[fe80::1]",
                "[fc00::1]", "[fd00::1]", "[ff02::1]", "[::ffff:10.0.0.1]", "[::ffff:169.254.169.254]", "0xa9fea9fe",
                "2852039166", "0251.0376.0251.0376"]
    return [f"http://{host}:{port}/hook" for host in loopback + internal] + [
        f"https://{host}:{port}/hook" for host in ("127.0.0.1", "[::1]", "0x7f.1")
    ]
