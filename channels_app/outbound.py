"""The outbound address rules: where the server may open a connection.

Every request the server makes to a URL someone configured or sent (webhooks
now; media fetches and the WhatsApp Cloud API later) goes through
`resolve_allowed`: the host is resolved once, every address it resolves to is
checked, and the caller connects to the checked address (`checked_connection`),
never to the name again, so a DNS answer that changes between the check and
the connection (DNS rebinding) cannot send it elsewhere. Without these rules a
staff user could point a webhook at the database, the cloud metadata service
or any port of the internal network and read the first bytes of the answer on
the delivery page (API.md, "Safe by default").

Refused: loopback, private, link-local, shared (100.64.0.0/10), multicast,
reserved and unspecified addresses, IPv4 and IPv6, an IPv4-mapped IPv6 address
by its IPv4 address. Host spellings such as `2130706433`, `0177.0.0.1` or
`0x7f.1` are resolved by the system's resolver like any name, so they are
checked as the address they mean. `WEBHOOK_ALLOWED_NETWORKS` (CIDRs) allows
some, e.g. `127.0.0.0/8` for a receiver on the same machine.
"""

import http.client
import ipaddress
import socket
import ssl
from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

BLOCKED_ADDRESS = "blocked address"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedAddress(Exception):
    """The host is, or resolves to, an address the rules refuse (or cannot be resolved for a check)."""


@lru_cache(maxsize=16)
def _allowed_networks(setting: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in setting if cidr.strip())


def allowed_networks() -> tuple:
    """The networks of WEBHOOK_ALLOWED_NETWORKS (a list or a comma-separated text)."""
    value = getattr(settings, "WEBHOOK_ALLOWED_NETWORKS", ()) or ()
    if isinstance(value, str):
        value = value.split(",")
    return _allowed_networks(tuple(value))


NAT64 = ipaddress.ip_network("64:ff9b::/96")  # an IPv4 address in IPv6 clothes, translated by a NAT64 gateway
SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
# Special-purpose IPv4 blocks Python 3.11 still calls global (RFC 6890): protocol assignments, 6to4 relays.
SPECIAL_IPV4 = (ipaddress.ip_network("192.0.0.0/24"), ipaddress.ip_network("192.88.99.0/24"))


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, NAT64, 6to4), judged by that address."""
    if address.version != 6:
        return None
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def address_refusal(address: IPAddress) -> str | None:
    """Why an address may not be connected to ("loopback", "private"...), or None when it may."""
    checked = _embedded_ipv4(address) or address
    for network in allowed_networks():
        if checked.version == network.version and checked in network:
            return None
    # Order matters only for the reason given: loopback is also private in Python's tables.
    kinds = [
        ("unspecified", checked.is_unspecified),
        ("loopback", checked.is_loopback),
        ("link-local", checked.is_link_local),
        ("multicast", checked.is_multicast),
        ("shared", checked.version == 4 and checked in SHARED),
        ("reserved", checked.is_reserved or any(checked in network for network in SPECIAL_IPV4
                                                 if checked.version == 4)),
        ("private", checked.is_private),
        ("not global", not checked.is_global),
    ]
    return next((kind for kind, applies in kinds if applies), None)


def resolve_allowed(host: str, port: int) -> str:
    """The address to connect to for `host`: resolved once, every address it resolves to checked.
    Raises BlockedAddress when one is refused; socket.gaierror when the name does not resolve."""
    if not host:
        raise BlockedAddress(f"{BLOCKED_ADDRESS}: no host")
    host = host.strip("[]")
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%")[0])  # an IPv6 scope (%eth0) is not part of it
        if reason := address_refusal(address):
            raise BlockedAddress(f"{BLOCKED_ADDRESS}: {host} is {address} ({reason})")
        addresses.append(str(address))
    if not addresses:
        raise BlockedAddress(f"{BLOCKED_ADDRESS}: {host} resolves to no address")
    return addresses[0]


def checked_connection(
    *, scheme: str, host: str, port: int | None, address: str, timeout: float, tls: ssl.SSLContext | None = None
) -> http.client.HTTPConnection:
    """An http.client connection to `host` that connects to `address` (from resolve_allowed): the Host
    header names `host`, and for https the certificate is checked against `host` (SNI too). http.client
    follows no redirects: a 3xx is an answer like any other, which the caller treats as a failure."""
    connection_class = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    options = {"context": tls} if scheme == "https" else {}
    connection = connection_class(host, port, timeout=timeout, **options)

    def connect_to_checked_address(host_and_port, timeout, source_address=None):
        return socket.create_connection((address, host_and_port[1]), timeout, source_address)

    # http.client opens its socket through this hook (HTTPSConnection wraps it afterwards with the host name).
    connection._create_connection = connect_to_checked_address
    return connection


def url_refusal(url: str) -> str | None:
    """Why a URL the server would send to is refused on save ("blocked address: ...", credentials in it),
    or None. A name that does not resolve now is accepted: it is checked again at every send."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        return "A URL with a user name or password in it is refused: put credentials in the channel's secret."
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "The port is not a number between 0 and 65535."
    try:
        resolve_allowed(parts.hostname or "", port)
    except BlockedAddress as refusal:
        return f"{refusal}: the server does not send to internal addresses (WEBHOOK_ALLOWED_NETWORKS allows some)."
    except (OSError, UnicodeError, ValueError):  # does not resolve (now): checked again when sending
        return None
    return None


def validate_outbound_url(value: str) -> None:
    """Django validator of a URL the server sends to (a channel's webhook URL)."""
    if value and (refusal := url_refusal(value)):
        raise ValidationError(refusal, code="blocked_address")


# --- What a failed attempt reads as ---------------------------------------------------------------------------
# The transports keep the raw error (`<exception name>: <its text>`, or their own sentence) on the send path;
# these words are computed only when a person looks (the delivery pages), so sending pays nothing for them.

_WORDS_BY_EXCEPTION = {
    "ConnectionRefusedError": "connection refused",
    "ConnectionResetError": "connection reset by the third party",
    "ConnectionAbortedError": "connection aborted",
    "BrokenPipeError": "connection closed while sending",
    "RemoteDisconnected": "connection closed without an answer",
    "IncompleteRead": "the answer was cut off",
    "BadStatusLine": "answered something that is not HTTP",
    "LineTooLong": "answered something that is not HTTP",
    "UnknownProtocol": "answered something that is not HTTP",
    "SSLCertVerificationError": "TLS certificate not accepted",
    "SSLError": "TLS handshake failed",
    "UnicodeError": "host name not valid",
}
_WORDS_BY_TEXT = (  # OSError's own texts, for errors without a class of their own
    ("Temporary failure in name resolution", "host name could not be looked up (DNS did not answer)"),
    ("No route to host", "host unreachable"),
    ("Network is unreachable", "network unreachable"),
)


def failure_in_words(error: str, status_code: int | None, *, timeout_seconds: float) -> str:
    """An attempt's error as a person reads it ("connection refused", "host name not found", "timed out
    after 10 s", "answered 503"), from the raw error a transport kept and the HTTP status of the answer
    (None when no answer came: no status is made up then). A text these rules do not know is shown as it is."""
    if status_code is not None:
        detail = "" if error in ("", f"HTTP {status_code}") else f": {error}"
        return f"answered {status_code}{detail}"
    name, _, rest = error.partition(": ")
    for text, words in _WORDS_BY_TEXT:
        if text in rest:
            return words
    if name == "gaierror":
        return "host name not found"
    if name in ("TimeoutError", "timeout") or error.startswith("The answer took longer than"):
        return f"timed out after {timeout_seconds:g} s"
    return _WORDS_BY_EXCEPTION.get(name, error)
