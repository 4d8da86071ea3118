"""The trust boundary of the keyless mode: the Host names the API answers (no DNS rebinding) and the
browser writes it takes (no cross-site form posts or uploads), decided from the request's headers.

Starlette's TrustedHostMiddleware is not used: it answers in plain text rather than the error format,
knows no `[::1]:port`, and checks no Origin."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.errors import BumpfitError, Forbidden, InvalidHost
from app.http.auth import is_loopback

# No Origin check: browsers send these cross-site freely, and they change nothing.
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def parse_hosts(entries: str) -> frozenset[str]:
    """`name,name` (BUMPFIT_ALLOWED_HOSTS) -> lower-case host names, IPv6 addresses without brackets;
    an entry with a scheme, a path or a port is a ValueError naming it."""
    hosts = set()
    for entry in filter(None, (e.strip().lower() for e in entries.split(","))):
        name = entry.removeprefix("[").removesuffix("]")
        if not name or any(c in name for c in "/[]") or name.count(":") == 1:
            raise ValueError(f"entry {entry!r}: expected a host name or address, without scheme, port or path")
        hosts.add(name)
    return frozenset(hosts)


def host_name(host: str) -> str:
    """The name in a Host header, lower-case, without port or brackets: `[::1]:8000` -> `::1`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.partition(":")[0]


@dataclass(frozen=True)
class Boundary:
    """Answer loopback Host names and `hosts`; take writes (methods other than GET, HEAD and OPTIONS)
    from the request's own origin, from `origins` (BUMPFIT_CORS_ORIGINS) and from `hosts`' origins."""

    hosts: frozenset[str] = frozenset()
    origins: frozenset[str] = frozenset()

    def trusted(self, origin: str) -> bool:
        """True for an origin listed in `origins` or on a host listed in `hosts`."""
        try:
            return origin in self.origins or (urlsplit(origin).hostname or "") in self.hosts
        except ValueError:  # not a URL (`http://[bad`)
            return False

    def refusal(self, method: str, scheme: str, headers: Mapping[str, str]) -> BumpfitError | None:
        """Why this request is refused (InvalidHost, 400, or Forbidden, 403), or None to answer it."""
        host = headers.get("host", "")  # browsers always send one: a request without is no page's
        name = host_name(host)
        if host and not (is_loopback(name) or name in self.hosts):
            return InvalidHost(
                f"host name {host!r} refused: bumpfit answers localhost, 127.0.0.1, [::1] and the names "
                "BUMPFIT_ALLOWED_HOSTS lists only"
            )
        if method in SAFE_METHODS:
            return None
        own, origin = f"{scheme}://{host.lower()}", headers.get("origin")
        if origin is not None and origin.lower() != own and not self.trusted(origin):
            reason = f"its Origin {origin} is not this service's own ({own})"
        elif headers.get("sec-fetch-site") == "cross-site" and not (origin and self.trusted(origin)):
            reason = "the browser sent it from another site (Sec-Fetch-Site: cross-site)"
        else:
            return None
        return Forbidden(f"cross-site {method} refused: {reason}; trust an origin with BUMPFIT_CORS_ORIGINS")
