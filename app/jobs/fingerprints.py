"""What a job request is known by: its fuse key's digest and its Idempotency-Key fingerprints,
today's and those earlier releases stored."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from app.jobs.schemas import JobRequest


def digest(obj: Any) -> str:
    """A stable hash of a JSON-able object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# Request fields added since the first release, with their defaults, one group per release, newest
# first. Releases before 0007 fingerprinted the filled-in request, so a row they stored hashes the
# fields as the release that wrote it knew them: the networks' fields came with 0007 itself (so no
# stored hash has them), early stopping with the release before, the first release had neither. A
# field added since 0007 joins the first group: no filled-in request that was hashed had it either.
ADDED_SINCE_FIRST_RELEASE: tuple[tuple[tuple[str | None, str, Any], ...], ...] = (
    (
        (None, "model", None),
        ("training", "metrics", []),
        ("data", "target", None),
        ("data", "features", None),
        ("data", "normalize", None),
        ("data", "normalize_target", None),
    ),
    (("training", "early_stopping", None),),
)


def fingerprint(req: JobRequest) -> str:
    """What an Idempotency-Key's request is compared by: a hash of the fields the client sent, so a
    retry still matches after a release fills in new defaults."""
    return digest(req.model_dump(mode="json", exclude_unset=True))


def older_fingerprints(req: JobRequest) -> set[str]:
    """The fingerprints earlier releases stored for `req`: its filled-in form as each knew it."""
    full = req.model_dump(mode="json")
    found = {digest(full)}
    for release in ADDED_SINCE_FIRST_RELEASE:
        for section, name, default in release:
            part = full if section is None else full[section]
            if name in part and part[name] != default:
                return found  # a release without this field could not have been sent it
        for section, name, _ in release:
            if section is None:
                full = {k: v for k, v in full.items() if k != name}
            else:
                full = {**full, section: {k: v for k, v in full[section].items() if k != name}}
        found.add(digest(full))
    return found
