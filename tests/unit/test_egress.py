"""The egress policy (app/outbox/egress.py) over many spellings of local addresses, its allow
settings, and the guarded connection (app/outbox/transport.py): one resolution, every address
checked, the checked address connected to, every read and write within the deadline. No network:
the resolver and the socket layer are fakes here."""

from __future__ import annotations

import re
import time
from typing import Any

import httpcore
import pytest
from pydantic import ValidationError

from app.outbox import transport
from app.outbox.egress import Policy, Refused, literal, networks
from app.settings import Settings

LOCAL = {
    # loopback, in the spellings inet_aton and the resolver accept
    "127.0.0.1": "loopback",
    "127.1": "loopback",
    "2130706433": "loopback",
    "0x7f.1": "loopback",
    "0x7f000001": "loopback",
    "0177.0.0.1": "loopback",
    "017700000001": "loopback",
    "127.0.0.1.": "loopback",
    "127.255.255.254": "loopback",
    "::1": "loopback",
    "[::1]": "loopback",
    "0:0:0:0:0:0:0:1": "loopback",
    "::ffff:127.0.0.1": "loopback",  # IPv4-mapped
    "::ffff:7f00:1": "loopback",
    "[::ffff:127.0.0.1]": "loopback",
    "::127.0.0.1": "loopback",  # IPv4-compatible
    "64:ff9b::127.0.0.1": "loopback",  # NAT64
    "2002:7f00:1::1": "loopback",  # 6to4
    # unspecified
    "0.0.0.0": "unspecified",
    "0": "unspecified",
    "::": "unspecified",
    "::ffff:0.0.0.0": "unspecified",
    # link-local, cloud metadata
    "169.254.169.254": "link-local",
    "0xa9fea9fe": "link-local",
    "::ffff:169.254.169.254": "link-local",
    "fe80::1": "link-local",
    "fe80::1%eth0": "link-local",
    # private, shared, unique local, site-local
    "10.0.0.1": "private",
    "10.1": "private",
    "012.0.0.1": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "0xc0a80101": "private",
    "3232235777": "private",
    "::ffff:10.0.0.1": "private",
    "100.64.0.1": "shared (CGNAT, 100.64.0.0/10)",
    "100.127.255.254": "shared (CGNAT, 100.64.0.0/10)",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "fec0::1": "site-local",
    # multicast, reserved, documentation
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "ff02::1": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    "192.0.2.1": "private",
    "0.1.2.3": "private",
}
PUBLIC = ["8.8.8.8", "1.1", "134744072", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::8.8.8.8"]


@pytest.mark.parametrize(("host", "why"), LOCAL.items())
def test_local_addresses_are_refused_in_every_spelling(host: str, why: str) -> None:
    with pytest.raises(Refused, match=rf"is {re.escape(why)}$"):
        Policy().check_host(host)


@pytest.mark.parametrize("host", PUBLIC)
def test_public_addresses_pass(host: str) -> None:
    Policy().check_host(host)


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "localhost.", "api.localhost", "ip6-localhost"])
def test_loopback_names_are_refused(host: str) -> None:
    with pytest.raises(Refused, match="is a loopback name"):
        Policy().check_host(host)


@pytest.mark.parametrize("host", ["example.com", "hooks.example.test", "ci-1.internal_x.example", "bücher.de"])
def test_names_pass_registration(host: str) -> None:
    Policy().check_host(host)  # resolved and checked at each delivery


@pytest.mark.parametrize("host", ["exa mple.com", "127.0.0.1%2f", "a..b", "x/y"])
def test_what_is_no_host_name_is_refused(host: str) -> None:
    with pytest.raises(Refused, match="is not a host name"):
        Policy().check_host(host)


def test_literal_reads_what_inet_aton_reads() -> None:
    assert str(literal("0x7f.1")) == str(literal("2130706433")) == str(literal("127.1")) == "127.0.0.1"
    assert literal("deadbeef") is None and literal("cafe.de") is None and literal("example.com") is None


def test_allow_private_lets_local_unicast_through() -> None:
    policy = Policy(allow_private=True)
    for host in ["127.0.0.1", "2130706433", "[::ffff:127.0.0.1]", "localhost", "10.0.0.1", "fd00::1", "fe80::1"]:
        policy.check_host(host)
    for host, why in [("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"), ("::", "unspecified")]:
        with pytest.raises(Refused, match=why):
            policy.check_host(host)


def test_allow_cidrs_let_those_networks_through() -> None:
    policy = Policy.of(False, " 127.0.0.0/8, fd00::/8 ")
    for host in ["127.0.0.1", "127.1", "::ffff:127.0.0.1", "localhost", "fd00::5"]:
        policy.check_host(host)
    for host in ["10.0.0.1", "::1", "169.254.169.254", "0.0.0.0"]:
        with pytest.raises(Refused):
            policy.check_host(host)


def test_a_bad_cidr_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="'nope' is not a CIDR"):
        networks("10.0.0.0/8,nope")
    with pytest.raises(ValidationError, match="webhook_allow_cidrs"):
        Settings(webhook_allow_cidrs="10.0.0.0/33")


class FakeStream(httpcore.NetworkStream):
    """Records the timeouts it is given."""

    def __init__(self) -> None:
        self.timeouts: list[float | None] = []

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.timeouts.append(timeout)
        return b""

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.timeouts.append(timeout)

    def close(self) -> None:
        pass


class FakeBackend(httpcore.NetworkBackend):
    """Records where it was asked to connect; connects nowhere."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.stream = FakeStream()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, *_: Any, **__: Any) -> FakeStream:
        self.hosts.append(host)
        return self.stream


def fake_resolver(monkeypatch: pytest.MonkeyPatch, answers: list[str]) -> list[str]:
    asked: list[str] = []

    def lookup(host: str, port: int) -> list[Any]:
        asked.append(host)
        return [literal(a) for a in answers]

    monkeypatch.setattr(transport, "lookup", lookup)
    return asked


def test_a_name_is_resolved_once_and_the_checked_address_connected_to(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_resolver(monkeypatch, ["127.0.0.1"])
    inner = FakeBackend()
    transport.Guarded(Policy.of(False, "127.0.0.0/8"), inner).connect_tcp("hooks.example.test", 80, timeout=5)
    assert asked == ["hooks.example.test"] and inner.hosts == ["127.0.0.1"]


def test_a_name_that_resolves_to_a_local_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for answers in (["127.0.0.1"], ["8.8.8.8", "10.0.0.1"], ["::ffff:169.254.169.254"]):
        fake_resolver(monkeypatch, answers)
        inner = FakeBackend()
        with pytest.raises(Refused):
            transport.Guarded(Policy(), inner).connect_tcp("hooks.example.test", 80, timeout=5)
        assert inner.hosts == []  # nothing was connected to


def test_a_literal_is_not_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_resolver(monkeypatch, ["8.8.8.8"])
    inner = FakeBackend()
    with pytest.raises(Refused, match="127.0.0.1 is loopback"):
        transport.Guarded(Policy(), inner).connect_tcp("2130706433", 80, timeout=5)
    assert asked == [] and inner.hosts == []


def test_reads_and_writes_end_by_the_deadline() -> None:
    stream = transport._Stream(inner := FakeStream())
    token = transport.DEADLINE.set(time.monotonic() + 0.5)
    try:
        stream.read(10, timeout=30)
        stream.write(b"x", timeout=30)
        assert all(t is not None and t <= 0.5 for t in inner.timeouts)
    finally:
        transport.DEADLINE.reset(token)
    token = transport.DEADLINE.set(time.monotonic() - 1)
    try:
        with pytest.raises(httpcore.ReadTimeout):
            stream.read(10, timeout=30)
        with pytest.raises(httpcore.WriteTimeout):
            stream.write(b"x", timeout=30)
    finally:
        transport.DEADLINE.reset(token)
