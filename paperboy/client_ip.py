"""The client's address, as rate limits must see it behind a reverse proxy.

Behind a proxy every request comes from the proxy's address, so a limit keyed on
`REMOTE_ADDR` would put every client in one bucket. `X-Forwarded-For` says who the proxy
spoke for, but anyone can send that header: it is believed only as far as it was written
by a proxy we trust (`PAPERBOY_TRUSTED_PROXIES`, addresses or networks). The header is
read from the right, each trusted hop peeled off, and the first address not ours is the
client. With no trusted proxies configured the header is ignored entirely.
"""

from __future__ import annotations

import ipaddress
from functools import cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def _trusted(spec: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in spec)


def trusted_networks() -> tuple[Network, ...]:
    """The configured proxies as networks (a bad entry fails at start, see settings)."""
    return _trusted(tuple(settings.PAPERBOY_TRUSTED_PROXIES))


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_trusted(text: str) -> bool:
    address = _address(text)
    return address is not None and any(address in net for net in trusted_networks())


def client_address(request: HttpRequest) -> str:
    """The address of whoever sent this request, as far as trusted proxies vouch for it."""
    remote = str(request.META.get("REMOTE_ADDR", ""))
    if not is_trusted(remote):
        return remote
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            address = _address(hop)
            # A hop that is not an address at all was forged or garbled: the last trusted
            # proxy is then the best we know.
            return str(address) if address is not None else remote
    return hops[0] if hops else remote
