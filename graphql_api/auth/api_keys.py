"""API keys: how they look, how they are made, and each replica's copy of the ones in force.

A key reads ``sgq_<key id>_<secret>``. The key id (16 hex digits) is public and names the row in
``api_keys``; only the SHA-256 of the secret is stored, and a presented secret is compared with
it in constant time. Secrets are 256 random bits, so a fast hash is the right one (a password
hash would only slow every request down without making a guess any likelier).
"""

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from db.control import api_keys
from db.engine import Database
from db.records import Actor, ApiKeyRecord
from graphql_api.auth.identity import Caller, Role, check_tenant

logger = logging.getLogger(__name__)

KEY_PREFIX = "sgq_"
_KEY_PATTERN = re.compile(r"sgq_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
MIN_MISS_REFRESH_SECONDS = 1.0
"""An unknown key id re-reads the keys (it may have just been made on another replica), at most this often."""


@dataclass(frozen=True)
class NewKey:
    """A key as made: ``token`` is shown once and never stored."""

    key_id: str
    token: str
    secret_sha256: bytes


def new_key() -> NewKey:
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return NewKey(key_id=key_id, token=f"{KEY_PREFIX}{key_id}_{secret}", secret_sha256=_digest(secret))


def looks_like_key(token: str) -> bool:
    """Whether a bearer token is meant as one of our keys (rather than a JWT)."""
    return token.startswith(KEY_PREFIX)


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def caller_of(record: ApiKeyRecord) -> Caller:
    return Caller(
        role=Role(record.role),
        tenant=record.tenant,
        name=f"key:{record.label}",
        kind="key",
        rate_bucket=f"key:{record.key_id}",
    )


class KeyRing:
    """This replica's copy of the keys in force, re-read every ``refresh_seconds``.

    Checking a key costs no database round trip. A key made on another replica is found at once
    (an unknown key id triggers a re-read, at most once a second); a revoked key stops working
    here within ``refresh_seconds``. Each re-read also records which keys were used since the last.
    """

    def __init__(self, db: Database, refresh_seconds: float) -> None:
        self._db = db
        self._refresh_seconds = refresh_seconds
        self._in_force: dict[str, tuple[bytes, Caller]] = {}
        self._used: set[str] = set()
        self._last_read = -float("inf")
        self._reading: asyncio.Task[None] | None = None
        self._failing = False
        self.loaded = False
        self.any_key_made = False
        """Whether any key was ever made (revoked ones count): an empty table means an open server."""

    async def refresh(self) -> None:
        """Re-reads the keys (one read at a time; concurrent callers share it)."""
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read())
        reading = self._reading
        try:
            await asyncio.shield(reading)
        finally:
            if reading.done() and self._reading is reading:
                self._reading = None

    async def _read(self) -> None:
        used, self._used = self._used, set()
        try:
            if used:
                await self._db.run(lambda conn: api_keys.touch_keys(conn, sorted(used)), idempotent=True)
            records = await self._db.run(api_keys.load_keys, idempotent=True)
        except Exception:
            self._used |= used
            raise
        finally:
            self._last_read = time.monotonic()
        self._install(records)

    def _install(self, records: Sequence[ApiKeyRecord]) -> None:
        self._in_force = {
            record.key_id: (record.secret_sha256, caller_of(record))
            for record in records
            if record.revoked_at is None
        }
        self.any_key_made = bool(records)
        self.loaded = True

    async def keep_fresh(self) -> None:
        """Re-reads forever; a failing database is logged once until it answers again."""
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.refresh()
            except Exception as error:
                if not self._failing:
                    logger.warning("cannot re-read API keys (keeping the last ones read): %r", error)
                self._failing = True
            else:
                if self._failing:
                    logger.info("API keys re-read again")
                self._failing = False

    async def caller_for(self, token: str) -> Caller | None:
        """The caller a key belongs to, or None for a malformed, unknown or revoked key."""
        match = _KEY_PATTERN.fullmatch(token)
        if match is None:
            return None
        key_id, secret = match.groups()
        known = self._in_force.get(key_id)
        if known is None:
            # Perhaps made a moment ago on another replica. Misses re-read at most once a second,
            # sharing one read, so made-up keys cannot turn into a stream of queries.
            wait = MIN_MISS_REFRESH_SECONDS - (time.monotonic() - self._last_read)
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                if self._in_force.get(key_id) is None and self._reading is None:
                    await self.refresh()
                elif self._reading is not None:
                    await asyncio.shield(self._reading)
            except Exception as error:
                logger.warning("cannot re-read API keys for an unknown key id: %r", error)
            known = self._in_force.get(key_id)
        if known is None:
            return None
        stored_digest, caller = known
        if not hmac.compare_digest(_digest(secret), stored_digest):
            return None
        self._used.add(key_id)
        return caller


LABEL_LENGTH = 100


def check_label(label: str) -> str:
    """Labels appear in listings and the audit log: short single-line text."""
    if not label or len(label) > LABEL_LENGTH or not label.isprintable() or label != label.strip():
        raise ValueError(
            f"a key label must be 1-{LABEL_LENGTH} printable characters without surrounding blanks"
        )
    return label


Transaction = Callable[[Callable[[AsyncConnection], Awaitable[ApiKeyRecord]]], Awaitable[ApiKeyRecord]]
"""What runs the write in one transaction: ``Database.run_in_transaction`` (the CLI), or a
request's ``Context.write`` (the API)."""


async def issue_key(
    transaction: Transaction, *, role: Role, tenant: str | None, label: str | None, actor: Actor
) -> tuple[NewKey, ApiKeyRecord]:
    """Makes and stores a key; the returned ``NewKey.token`` is the only copy of the secret.
    ``ValueError`` for a label or tenant that is not one."""
    made = new_key()
    chosen = check_label(label) if label is not None else f"{role.value}-{made.key_id[:6]}"
    if tenant is not None:
        check_tenant(tenant)
    record = await transaction(
        lambda conn: api_keys.create_key(
            conn,
            key_id=made.key_id,
            secret_sha256=made.secret_sha256,
            label=chosen,
            role=role.value,
            tenant=tenant,
            actor=actor,
        )
    )
    return made, record
