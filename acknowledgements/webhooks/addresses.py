"""Where a webhook may be sent: http(s) URLs whose host resolves to public addresses only.

A webhook is a request the portal makes to a URL an administrator typed: without these checks
it could reach the database, a cloud metadata service (169.254.169.254) or any other machine
of the internal network. The host is resolved, every address it resolves to is checked, and
the request then connects to a checked address, so that a name resolving elsewhere a moment
later (DNS rebinding) changes nothing. PORTAL_WEBHOOK_ALLOW_PRIVATE=1 lifts the address check
(a receiver on the same network); the scheme and URL checks stay.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext as _

type Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(ValueError):
    """The URL may not be sent to; the message says why, for the administrator."""


@dataclass(frozen=True)
class Target:
    """A URL taken apart, with the address the request connects to."""

    scheme: str
    host: str  # the name the TLS certificate must carry
    netloc: str  # the Host header: the host (and port) as the URL writes them
    port: int
    path: str  # with the query
    addresses: tuple[str, ...]  # the checked IP addresses to connect to, in the resolver's order


def _public(address: Address) -> bool:
    # An IPv6 address can carry an IPv4 one (::ffff:10.0.0.1, 2002:0a00:0001::): judge that.
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return _public(embedded)
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified
    )


def _parts(url: str) -> tuple[str, str, str, int, str]:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise AddressRefused(_("This is not a valid URL.")) from None
    if parts.scheme not in ("http", "https"):
        raise AddressRefused(_("The URL must start with https:// (or http://)."))
    if not parts.hostname:
        raise AddressRefused(_("The URL must name a host."))
    if parts.username is not None or parts.password is not None:
        raise AddressRefused(
            _("The URL must not hold a user name or password: receivers check the signature.")
        )
    if parts.fragment:
        raise AddressRefused(_("The URL must not end with a #fragment."))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname, parts.netloc, port or default, path


def _resolve(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise AddressRefused(_("The host %(host)s could not be found.") % {"host": host}) from None
    # Addresses with a zone (fe80::1%eth0) are link-local, which the check refuses anyway.
    return list(
        dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found)
    )


def check(url: str) -> Target:
    """The URL's target, after resolving its host; AddressRefused if it may not be sent to."""
    scheme, host, netloc, port, path = _parts(url)
    addresses = _resolve(host, port)
    if not addresses:
        raise AddressRefused(_("The host %(host)s could not be found.") % {"host": host})
    if not settings.PORTAL_WEBHOOK_ALLOW_PRIVATE:
        refused = [str(address) for address in addresses if not _public(address)]
        if refused:
            raise AddressRefused(
                _(
                    "%(host)s is a private, loopback or otherwise internal address "
                    "(%(addresses)s): webhooks are only sent to public addresses."
                )
                % {"host": host, "addresses": ", ".join(refused)}
            )
    return Target(
        scheme=scheme,
        host=host,
        netloc=netloc,
        port=port,
        path=path,
        addresses=tuple(str(address) for address in addresses),
    )
