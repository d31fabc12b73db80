"""Bearer-token authentication: tokens are stored as sha256 digests and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .settings import ApiKey

# A role grants itself and everything below it.
_GRANTS = {"read": {"read"}, "write": {"read", "write"}, "admin": {"read", "write", "admin"}}


# Headers that decide who the caller is or which request this is. A proxy may pick the last
# copy where we would pick the first, so a request carrying one of them twice is refused.
SINGLE_HEADERS = ("Authorization", "Idempotency-Key")


def repeated_headers(headers: Mapping[str, str]) -> list[str]:
    """The names in ``SINGLE_HEADERS`` that ``headers`` (a multidict) carries more than once."""
    getall = getattr(headers, "getall")
    return [name for name in SINGLE_HEADERS if len(getall(name, [])) > 1]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return "sj_" + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    user_id: str
    roles: frozenset[str]

    def can(self, role: str) -> bool:
        return role in self.roles

    def user_context(self) -> dict[str, Any]:
        """What the runtime sees: built from the credential only, never from the request body."""
        return {"tenant_id": self.tenant_id, "user_id": self.user_id, "roles": sorted(self.roles)}


def _principal(key: ApiKey) -> Principal:
    granted: set[str] = set()
    for role in key.roles:
        granted |= _GRANTS[role]
    return Principal(key.tenant_id, key.user_id, frozenset(granted))


DEV_PRINCIPAL = Principal("default", "dev", frozenset(_GRANTS["admin"]))


class Authenticator:
    """Maps ``Authorization: Bearer <token>`` to a Principal, or None.

    Every declared digest is compared with ``hmac.compare_digest`` (no early exit), so the time
    taken does not depend on which key, if any, matched.
    """

    def __init__(self, keys: Iterable[ApiKey], *, insecure_dev: bool = False) -> None:
        self._keys = [(k.sha256.encode("ascii"), _principal(k)) for k in keys]
        self.insecure_dev = insecure_dev

    def replace(self, keys: Iterable[ApiKey]) -> int:
        """Swap in a new set of keys at once (one assignment: a request sees the old or the new set)."""
        new = [(k.sha256.encode("ascii"), _principal(k)) for k in keys]
        self._keys = new
        return len(new)

    def authenticate(self, authorization: str | None) -> Principal | None:
        if self.insecure_dev:
            return DEV_PRINCIPAL
        if not authorization or not authorization[:7].lower() == "bearer ":
            return None
        token = authorization[7:].strip()
        if not token or len(token) > 512:
            return None
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest().encode("ascii")
        found = None
        for stored, principal in self._keys:
            if hmac.compare_digest(stored, digest):
                found = principal
        return found
