"""The client's address: the one DRF's throttling tells clients apart by.

With `NUM_PROXIES=0` (the default) it is the connection's address
(`REMOTE_ADDR`); behind N proxies that append to `X-Forwarded-For`, the
address the Nth proxy from the server saw. The login throttle and the audit
log use the same rule, so a client cannot claim another address to one of
them and not to the other."""

import ipaddress

from rest_framework.throttling import BaseThrottle


def client_ip(request) -> str | None:
    """The client's IP address as DRF's throttling reads it, or None when that is not an address."""
    ident = BaseThrottle().get_ident(request)
    try:
        return str(ipaddress.ip_address((ident or "").strip()))
    except ValueError:
        return None
