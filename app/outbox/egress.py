"""Where bumpfit may send events (webhooks, MLflow): public addresses only, unless a setting lets
local ones through. A host is judged as the resolver would read it: `2130706433`, `127.1` and
`0x7f.1` are 127.0.0.1, `[::ffff:127.0.0.1]` is too, and `localhost` names are loopback."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
CGNAT = ipaddress.IPv4Network("100.64.0.0/10")  # shared address space: the carrier's private side
COMPATIBLE = ipaddress.IPv6Network("::/96")  # IPv4-compatible IPv6 (deprecated), ::a.b.c.d
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known NAT64 prefix, the v4 in the last 32 bits
NUMERIC = re.compile(r"[0-9a-fx.]+")  # what inet_aton may read as a number: 127.1, 0x7f.1, 2130706433
NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")


class Refused(Exception):
    """The address is not one bumpfit may send to; the message says why."""


def networks(cidrs: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs as networks; ValueError naming a bad one."""
    out = []
    for item in filter(None, (c.strip() for c in cidrs.split(","))):
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not a CIDR such as 10.0.0.0/8 or fd00::/8") from None
    return tuple(out)


def literal(host: str) -> IP | None:
    """The address `host` spells, in any form the resolver accepts without asking DNS (dotted, short,
    decimal, octal or hex IPv4; IPv6 with or without brackets or zone); None for a name."""
    host = host.strip("[]").lower().rstrip(".")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if NUMERIC.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def embedded(ip: IP) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, compatible, 6to4, NAT64), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if (ip in COMPATIBLE and int(ip) > 1) or ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def kind(ip: IP) -> str | None:
    """Why `ip` is not a public unicast address ("loopback", "private", ...), or None if it is."""
    for test, name in (
        (ip.is_unspecified, "unspecified"),
        (ip.is_multicast, "multicast"),
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT, "shared (CGNAT, 100.64.0.0/10)"),
        (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "site-local"),
        (ip.is_reserved, "reserved"),
        (ip.is_private, "private"),
        (not ip.is_global, "not public"),
    ):
        if test:
            return name
    return None


@dataclass(frozen=True)
class Policy:
    """Public addresses only, plus every non-public unicast address with `allow_private`, plus the
    networks in `allow` (never unspecified or multicast ones)."""

    allow_private: bool = False
    allow: tuple[Network, ...] = ()

    @classmethod
    def of(cls, allow_private: bool, cidrs: str) -> Policy:
        """The policy of the settings BUMPFIT_WEBHOOK_ALLOW_PRIVATE and BUMPFIT_WEBHOOK_ALLOW_CIDRS."""
        return cls(allow_private, networks(cidrs))

    def check(self, ip: IP) -> None:
        """Refused naming the address and why, unless bumpfit may send to it."""
        v4 = embedded(ip)  # an IPv6 address that carries an IPv4 one is judged by that one
        why = kind(v4 if v4 is not None else ip)
        if why is None:
            return
        if why not in ("unspecified", "multicast"):
            if self.allow_private or any(a in net for a in (ip, v4) if a is not None for net in self.allow):
                return
        shown = f"{ip} ({v4})" if v4 is not None else str(ip)
        raise Refused(f"{shown} is {why}")

    def check_all(self, ips: Iterable[IP]) -> None:
        """Refused if any of `ips` is (a name that resolves to one local address is refused)."""
        for ip in ips:
            self.check(ip)

    def check_host(self, host: str) -> None:
        """Refused for a loopback name or a refused address in any spelling; a name is let through
        here (it is resolved and checked at each delivery), if it is a well-formed host name."""
        name = host.strip("[]").lower().rstrip(".")
        if name in LOOPBACK_NAMES or name.endswith(".localhost"):
            if not self.allow_private and not any(ipaddress.ip_address("127.0.0.1") in n for n in self.allow):
                raise Refused(f"{name} is a loopback name")
            return
        ip = literal(name)
        if ip is not None:
            self.check(ip)
            return
        try:
            ascii_name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise Refused(f"{host!r} is not a host name") from None
        if not NAME.fullmatch(ascii_name):
            raise Refused(f"{host!r} is not a host name")
