"""Rate limits counted in the shared cache (settings.CACHES): fixed windows per key, the one
implementation every limit of the portal's own counts with (allauth counts sign-ins itself).

Every process of every machine counts in the same place (Redis, or the database's cache table),
so four web workers allow what one would. A limit on clients counts them by client_key: a client
is known by its address as the portal determines it everywhere (client_evidence.client_ip:
X-Forwarded-For only from a trusted proxy), and an IPv6 client by its /64, which one client
usually holds whole (allauth counts sign-ins so). A limit on people counts them by their id.

Windows start together for everyone (each minute on the clock, for a one-minute window), so a
refused client is told exactly when the next one starts. Redis and the in-memory cache count
atomically; the database cache reads then writes, so requests arriving at the very same moment
may be counted once for several.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time

from django.core.cache import cache
from django.http import HttpRequest

from acknowledgements.evidence import client_evidence

IPV6_PREFIX = 64


def client_key(request: HttpRequest) -> str:
    """Who a request counts against: its client address, an IPv6 one by its /64."""
    address = client_evidence.client_ip(request)
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:  # no address, or a socket that is not IP: all such clients count as one
        return address or "unknown"
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/{IPV6_PREFIX}", strict=False).network_address)
    return str(ip)


def seconds_until_allowed(key: str, *, limit: int, window_seconds: int = 60) -> int | None:
    """Count one request against `key`; None when it is within `limit` a window (0: no limit),
    else how many seconds until the next window starts (a 429's Retry-After).

    A refused request is counted too: it changes nothing, the window ends when it ends.
    """
    if limit <= 0:
        return None
    now = time.time()
    window = int(now // window_seconds)
    ends_in = max(1, math.ceil((window + 1) * window_seconds - now))
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    counter = f"portal:ratelimit:{window_seconds}:{window}:{digest}"
    return None if _counted(counter, timeout=ends_in + 1) <= limit else ends_in


def _counted(counter: str, *, timeout: int) -> int:
    """Add one to the counter, starting it at 1 (with its timeout) when there is none.

    incr() first: once a window's count has started, that is all a request costs (the
    database cache's add() is five statements, and would be paid by every request).
    """
    try:
        return cache.incr(counter)
    except ValueError:  # the window's first request (or the count just expired)
        if cache.add(counter, 1, timeout=timeout):
            return 1
    try:
        return cache.incr(counter)  # another request started it a moment ago
    except ValueError:  # ... and it expired at once: count afresh
        cache.set(counter, 1, timeout=timeout)
        return 1
