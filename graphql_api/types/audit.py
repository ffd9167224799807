"""The audit log: deletes and key changes, who made them and when."""

import base64
import binascii
import json
import uuid
from datetime import datetime

import strawberry

from db.control.audit import AuditPosition
from db.records import AuditEventRecord, record_of
from graphql_api.errors import InputError
from graphql_api.types.pagination import PageInfo
from graphql_api.types.scalars import JSON, parse_stored_time

_PREFIX = "audit:"


def encode_audit_cursor(record: AuditEventRecord) -> str:
    text = _PREFIX + json.dumps([record.occurred_at.isoformat(), record.event_id])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_audit_cursor(field: str, cursor: str) -> AuditPosition:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith(_PREFIX):
            raise ValueError("not an audit cursor")
        occurred_at, event_id = json.loads(text[len(_PREFIX) :])
        return parse_stored_time(occurred_at), uuid.UUID(str(event_id))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise InputError(field, "is not a cursor this API returned") from None


@strawberry.type(description="One recorded change.")
class AuditEvent:
    event_id: str
    occurred_at: datetime
    tenant: str | None
    actor: str = strawberry.field(description="Who: key:<label>, jwt:<subject>, or the open server.")
    actor_role: str
    action: str = strawberry.field(
        description="deleteSession, deleteAgent, deleteSessions, retention, setRetentionRule, "
        "createApiKey, revokeApiKey, ..."
    )
    session_id: str | None
    target: JSON = strawberry.field(description="What the action named (ids, key label and role).")
    request_id: str | None

    @classmethod
    def from_record(cls, record: AuditEventRecord) -> "AuditEvent":
        return record_of(cls, record, shared_only=True)


@strawberry.type
class AuditEventEdge:
    cursor: str
    node: AuditEvent


@strawberry.type(description="A page of audit events, newest first.")
class AuditEventConnection:
    edges: list[AuditEventEdge]
    page_info: PageInfo

    @strawberry.field(description="The page's events, without cursors.")
    def nodes(self) -> list[AuditEvent]:
        return [edge.node for edge in self.edges]

    @classmethod
    def from_records(cls, records: list[AuditEventRecord], first: int) -> "AuditEventConnection":
        edges = [
            AuditEventEdge(cursor=encode_audit_cursor(r), node=AuditEvent.from_record(r))
            for r in records[:first]
        ]
        info = PageInfo(
            has_next_page=len(records) > first,
            has_previous_page=False,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        )
        return cls(edges=edges, page_info=info)
