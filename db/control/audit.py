"""The audit log: written beside the change it records, read back newest first by admins."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, tuple_
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from db.models import audit_events
from db.records import Actor, AuditEventRecord, record_of

AuditPosition = tuple[datetime, uuid.UUID]
"""Where a page of audit events ends: (occurred_at, event_id)."""


async def record_event(
    conn: AsyncConnection,
    *,
    tenant: str | None,
    actor: Actor,
    action: str,
    target: dict[str, Any],
    session_id: str | None = None,
) -> None:
    """Writes one entry; run it in the transaction of the change it describes."""
    await conn.execute(
        insert(audit_events).values(
            tenant=tenant,
            actor=actor.name,
            actor_role=actor.role,
            action=action,
            session_id=session_id,
            target=target,
            request_id=actor.request_id,
        )
    )


def audit_record(row: Any) -> AuditEventRecord:
    return record_of(AuditEventRecord, row, event_id=str(row.event_id))


async def list_events(
    conn: AsyncConnection,
    *,
    tenant: str | None,
    first: int,
    after: AuditPosition | None,
    action: str | None = None,
    session_id: str | None = None,
) -> list[AuditEventRecord]:
    """Newest first, ``first + 1`` of them; ``tenant`` None reads every tenant's (and tenantless) entries."""
    stmt = select(audit_events)
    if tenant is not None:
        stmt = stmt.where(audit_events.c.tenant == tenant)
    if action is not None:
        stmt = stmt.where(audit_events.c.action == action)
    if session_id is not None:
        stmt = stmt.where(audit_events.c.session_id == session_id)
    if after is not None:
        occurred_at, event_id = after
        stmt = stmt.where(
            tuple_(audit_events.c.occurred_at, audit_events.c.event_id)
            < tuple_(
                bindparam("after_at", occurred_at, type_=audit_events.c.occurred_at.type),
                bindparam("after_id", event_id, type_=UUID(as_uuid=True)),
            )
        )
    stmt = stmt.order_by(audit_events.c.occurred_at.desc(), audit_events.c.event_id.desc()).limit(first + 1)
    return [audit_record(row) for row in await conn.execute(stmt)]
