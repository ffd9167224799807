"""Who is calling: their role, their tenant, and how they proved it."""

import re
from dataclasses import dataclass
from enum import StrEnum

TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ALL_TENANTS = "*"
"""What a JWT's tenant claim says to reach every tenant (API keys say it by having no tenant)."""


class Role(StrEnum):
    """``reader``: queries only. ``writer``: what an agent needs. ``admin``: also deletes and keys."""

    READER = "reader"
    WRITER = "writer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: "Role") -> bool:
        return self.rank >= needed.rank


_RANKS = {Role.READER: 0, Role.WRITER: 1, Role.ADMIN: 2}


def check_tenant(value: str) -> str:
    """Tenant names appear in keys, logs and audit entries, so they stay short and plain."""
    if not TENANT_PATTERN.fullmatch(value):
        raise ValueError(
            f"tenant {value!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller.

    ``tenant`` None means bound to no tenant: it may name one per request (``X-Tenant``), its
    listings span every tenant, and without a named tenant its writes land in the default one.
    ``name`` is what the audit log records (a key's label, a JWT's subject); ``rate_bucket``
    identifies the caller to the rate limiter (None: not limited).
    """

    role: Role
    tenant: str | None
    name: str
    kind: str
    rate_bucket: str | None = None


OPEN_CALLER = Caller(role=Role.ADMIN, tenant=None, name="anonymous (open server)", kind="open")
"""Everyone, when the server runs without keys or JWTs (on loopback, or with --insecure)."""
