"""API keys: `Authorization: Bearer <key>`, stored as SHA-256 hashes with a scope (read or submit)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

from app.errors import Forbidden, Unauthorized

SCOPES = {"read": {"read"}, "submit": {"read", "submit"}}  # submit implies read
OPEN_PATHS = {"/healthz", "/readyz", "/metrics", "/", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
OPEN_PATHS |= {"/v2/health/live", "/v2/health/ready"}  # the Open Inference Protocol's probes
OPEN_PREFIXES = ("/dashboard/static/", "/docs/assets/")  # the dashboard's and the API docs' files
READ_METHODS = {"GET", "HEAD", "OPTIONS"}


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(scope: str) -> tuple[str, str]:
    """A fresh random key and its settings entry (`sha256:scope`)."""
    key = "bf_" + secrets.token_urlsafe(32)
    return key, f"{hash_key(key)}:{scope}"


def parse_keys(entries: str) -> dict[str, str]:
    """`hash:scope,hash:scope` -> {hash: scope}; a malformed entry is a start-up error."""
    keys: dict[str, str] = {}
    for entry in filter(None, (e.strip() for e in entries.split(","))):
        digest, _, scope = entry.partition(":")
        if len(digest) != 64 or scope not in SCOPES:
            raise ValueError(
                f"entry {entry[:12]!r}...: expected <sha256 hex>:read|submit (make one with `bumpfit keys new`)"
            )
        keys[digest.lower()] = scope
    return keys


def is_loopback(host: str) -> bool:
    """True for localhost and 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_open(path: str) -> bool:
    """True for the paths that need no key even when keys are configured."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def check_key(keys: dict[str, str], method: str, path: str, authorization: str) -> None:
    """With keys configured, reads need a read key and writes a submit key: Unauthorized (401) without
    a known key, Forbidden (403) for a key without the scope. Health, readiness, metrics, the
    dashboard page and the API docs stay open."""
    if not keys or is_open(path):
        return
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing API key: send the header Authorization: Bearer <key>")
    digest = hash_key(token.strip())
    scope = next((s for h, s in keys.items() if hmac.compare_digest(h, digest)), None)
    if scope is None:
        raise Unauthorized("unknown API key")
    need = "read" if method in READ_METHODS else "submit"
    if need not in SCOPES[scope]:
        raise Forbidden(f"this key has scope {scope!r}; {method} {path} needs a {need!r} key")
