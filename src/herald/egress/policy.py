"""Which addresses Herald may connect to when a tenant chooses where it goes.

A tenant steers some of Herald's outbound requests: the media URLs of its posts (Herald
downloads a YouTube video or a LinkedIn image to upload it) and its webhook URLs. Left open,
that is a server-side request forgery: a post whose image is ``http://169.254.169.254/...``
or ``http://10.0.0.5:5432/`` makes Herald reach into the network it runs in, and the
delivery's error would tell the tenant what answered.

:class:`EgressPolicy` allows public addresses: global unicast, neither loopback, private,
link-local, shared (CGNAT), multicast, reserved nor unspecified, and an IPv6 address that
carries an IPv4 one (IPv4-mapped, 6to4, Teredo, NAT64) is judged by the IPv4 address it
reaches. An operator may allow more, network by network (``egress.allow_cidrs``: the
simulator on loopback, a media server on the private network); no setting allows everything.
A refusal is :class:`~herald.errors.EgressRefused`, whose message says nothing of what is
behind the address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

from yarl import URL

from herald.config import EgressSettings
from herald.errors import EgressRefused

__all__ = ["EgressPolicy", "IPAddress", "Network"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the last 32 bits are IPv4
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598, shared address space
_REFUSED = "address not allowed"


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Public addresses, and the networks in ``allowed`` (an operator's choice)."""

    allowed: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: EgressSettings) -> EgressPolicy:
        return cls(tuple(settings.allow_cidrs))

    @classmethod
    def allowing(cls, *networks: str | Network) -> EgressPolicy:
        return cls(tuple(ipaddress.ip_network(n, strict=False) for n in networks))

    def allows(self, address: str | IPAddress) -> bool:
        ip = _address(address)
        if ip is None:
            return False
        if any(ip.version == net.version and ip in net for net in self.allowed):
            return True
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return self.allows(embedded)  # the IPv4 address it reaches decides
        return _public(ip)

    def check_url(self, url: str | URL) -> None:
        """Refuse a URL without a host, or whose host is a literal address not allowed
        (names are checked when they are resolved)."""
        host = URL(url).host if isinstance(url, str) else url.host
        if not host:
            raise EgressRefused(_REFUSED)
        literal = _address(host)
        if literal is not None and not self.allows(literal):
            raise EgressRefused(_REFUSED)

    async def check_name(self, host: str, *, within_s: float = 2.0) -> None:
        """Refuse ``host`` if it is an address, or resolves now to any address, that is not
        allowed: what a webhook's registration asks. A name that does not resolve (yet), or
        not within ``within_s``, passes: every connection is checked again when it is made."""
        literal = _address(host.strip("[]"))
        if literal is not None:
            if not self.allows(literal):
                raise EgressRefused(_REFUSED)
            return
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(within_s):
                found = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:  # no such name, or no answer in time (TimeoutError is an OSError)
            return
        if any(not self.allows(str(info[4][0])) for info in found):
            raise EgressRefused(_REFUSED)


def _address(text: str | IPAddress) -> IPAddress | None:
    if not isinstance(text, str):
        return text
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # a scoped IPv6 address: its zone
    except ValueError:
        return None


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo's client, NAT64)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _public(ip: IPAddress) -> bool:
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved or ip.is_loopback:
        return False
    if ip.is_link_local or ip.is_private:
        return False
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return False
    return ip.is_global
