"""API keys: `Authorization: Bearer <key>`, stored as SHA-256 hashes with a scope. Scopes are ranked,
each allowing what the ones before it allow: `read` (GET), `predict` (predictions and inference),
`submit` (jobs, sweeps, uploads, cancelling), `admin` (deletes, labels, webhooks); docs/access.md."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass

from app.errors import Forbidden, Unauthorized

SCOPES = ("read", "predict", "submit", "admin")  # each allows what those before it allow
RANK = {scope: i for i, scope in enumerate(SCOPES)}
LADDER = " < ".join(SCOPES)
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
                f"entry {entry[:12]!r}...: expected <sha256 hex>:read|submit|predict|admin "
                "(make one with `bumpfit keys new`)"
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


@dataclass(frozen=True)
class Caller:
    """Who sent a request, for scopes and limits: `id` is `key:<first 8 hex of the key's hash>` (the
    start of its BUMPFIT_API_KEYS entry), or `addr:<client address>` where keys are off."""

    id: str
    scope: str

    @property
    def key_id(self) -> str | None:
        """The key's id for logs (never the key), or None without keys."""
        return self.id.removeprefix("key:") if self.id.startswith("key:") else None

    def allows(self, need: str) -> bool:
        """True when this caller's scope is `need` or above it."""
        return RANK[self.scope] >= RANK[need]


def is_prediction(path: str) -> bool:
    """True for the prediction routes: TF Serving's `...:predict` and V2's `.../infer`, and the questions
    asked of a model, `...:bounds` and `...:optimize`."""
    return (path.startswith("/v1/models/") and path.endswith((":predict", ":bounds", ":optimize"))) or (
        path.startswith("/v2/models/") and path.endswith("/infer")
    )


def needed_scope(method: str, path: str) -> str:
    """The scope a request needs: reads `read`, predictions `predict`, deletes, labels and webhooks
    `admin`, every other write `submit`."""
    if method in READ_METHODS:
        return "read"
    if method in ("PUT", "DELETE") or path.rstrip("/") == "/v1/webhooks" or path.startswith("/v1/webhooks/"):
        return "admin"
    return "predict" if is_prediction(path) else "submit"


def check_key(keys: dict[str, str], method: str, path: str, authorization: str, client: str = "") -> Caller | None:
    """The request's caller, None on an open path (health, readiness, metrics, the dashboard page and
    the API docs). Without keys configured, the client address with every right. With keys,
    Unauthorized (401) without a known key, Forbidden (403) for a key below `needed_scope`."""
    if is_open(path):
        return None
    if not keys:
        return Caller(f"addr:{client}", "admin")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing API key: send the header Authorization: Bearer <key>")
    digest = hash_key(token.strip())
    scope = next((s for h, s in keys.items() if hmac.compare_digest(h, digest)), None)
    if scope is None:
        raise Unauthorized("unknown API key")
    caller, need = Caller(f"key:{digest[:8]}", scope), needed_scope(method, path)
    if not caller.allows(need):
        raise Forbidden(f"this key has scope {scope!r}; {method} {path} needs {need!r} (scopes: {LADDER})")
    return caller
