"""The caller's address, which brakes, history and logs key on, and the network a brake counts it
on."""

import ipaddress

from django.conf import settings
from django.http import HttpRequest

# Whoever holds one IPv6 address holds its whole /64 (the smallest allocation a subscriber or a
# virtual machine gets): counting each address alone would give one attacker 2^64 budgets.
IPV6_BRAKE_PREFIX = 64


def client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, or behind TRUSTED_PROXY_HOPS proxies the address the outermost of them saw.

    Only the hops we run are trusted: a client can put anything at the front of X-Forwarded-For,
    so the address is counted from its end.
    """
    hops = int(getattr(settings, "TRUSTED_PROXY_HOPS", 0))
    if hops > 0:
        forwarded = [
            a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()
        ]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.META.get("REMOTE_ADDR") or None


def brake_network(ip: str | None) -> str:
    """What a brake counts an address as: an IPv4 address itself (also when written IPv4-mapped),
    an IPv6 address its /64; "unknown" without an address, and anything that is no address as it
    is written (it is still one key, never a reason to fail)."""
    if not ip:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        network = ipaddress.IPv6Network((int(address), IPV6_BRAKE_PREFIX), strict=False)
        return str(network)
    return str(address)
