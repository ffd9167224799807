"""API keys in PostgreSQL, so that every replica knows the same keys.

Only a key's public id and the SHA-256 of its secret are stored. Creating and revoking a key
write their audit entry in the same transaction.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Text, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from db.control.audit import record_event
from db.errors import AlreadyExistsError, ConflictError, NotFoundError
from db.models import api_keys
from db.records import Actor, ApiKeyRecord, record_of


def key_record(row: Any) -> ApiKeyRecord:
    return record_of(ApiKeyRecord, row, secret_sha256=bytes(row.secret_sha256))


def _key_target(record: ApiKeyRecord) -> dict[str, Any]:
    return {"label": record.label, "keyId": record.key_id, "role": record.role, "tenant": record.tenant}


async def create_key(
    conn: AsyncConnection,
    *,
    key_id: str,
    secret_sha256: bytes,
    label: str,
    role: str,
    tenant: str | None,
    actor: Actor,
) -> ApiKeyRecord:
    """Stores a new key; ``AlreadyExistsError`` if a key in force has the label. Run in a transaction."""
    stmt = (
        insert(api_keys)
        .values(
            key_id=key_id,
            secret_sha256=secret_sha256,
            label=label,
            role=role,
            tenant=tenant,
            created_at=datetime.now(UTC),
            created_by=actor.name,
        )
        .returning(*api_keys.c)
    )
    try:
        async with conn.begin_nested():
            record = key_record((await conn.execute(stmt)).one())
    except IntegrityError:
        raise AlreadyExistsError(
            f"a key labelled {label!r} exists; revoke it or choose another label"
        ) from None
    await record_event(conn, tenant=tenant, actor=actor, action="createApiKey", target=_key_target(record))
    return record


async def list_keys(
    conn: AsyncConnection, *, tenant: str | None, include_revoked: bool = False
) -> list[ApiKeyRecord]:
    """Keys newest first; ``tenant`` None lists every tenant's and the tenantless ones."""
    stmt = select(api_keys)
    if tenant is not None:
        stmt = stmt.where(api_keys.c.tenant == tenant)
    if not include_revoked:
        stmt = stmt.where(api_keys.c.revoked_at.is_(None))
    stmt = stmt.order_by(api_keys.c.created_at.desc(), api_keys.c.key_id)
    return [key_record(row) for row in await conn.execute(stmt)]


async def revoke_key(conn: AsyncConnection, *, label: str, tenant: str | None, actor: Actor) -> ApiKeyRecord:
    """Revokes the key in force labelled ``label`` in ``tenant`` (None: in whichever tenant has it).

    ``ConflictError`` when ``tenant`` is None and several tenants have such a key. Run in a transaction.
    """
    stmt = select(api_keys).where(api_keys.c.label == label, api_keys.c.revoked_at.is_(None))
    if tenant is not None:
        stmt = stmt.where(api_keys.c.tenant == tenant)
    found = [key_record(row) for row in await conn.execute(stmt.with_for_update())]
    if not found:
        raise NotFoundError(f"no key in force is labelled {label!r}")
    if len(found) > 1:
        tenants = ", ".join(sorted(repr(record.tenant) for record in found))
        raise ConflictError(f"keys labelled {label!r} exist in tenants {tenants}; name the tenant")
    revoked = update(api_keys).where(api_keys.c.key_id == found[0].key_id).values(revoked_at=func.now())
    record = key_record((await conn.execute(revoked.returning(*api_keys.c))).one())
    target = _key_target(record)
    await record_event(conn, tenant=record.tenant, actor=actor, action="revokeApiKey", target=target)
    return record


async def load_keys(conn: AsyncConnection) -> list[ApiKeyRecord]:
    """Every key, revoked ones included: a replica needs to know whether any key was ever made."""
    return [key_record(row) for row in await conn.execute(select(api_keys))]


async def touch_keys(conn: AsyncConnection, key_ids: Sequence[str]) -> None:
    """Records that these keys were used (each replica batches this rather than writing per request)."""
    ids = bindparam("ids", list(key_ids), type_=ARRAY(Text))
    await conn.execute(
        update(api_keys).where(api_keys.c.key_id == func.any(ids)).values(last_used_at=func.now())
    )
