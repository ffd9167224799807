"""Retention rules and what a bulk delete took."""

from datetime import datetime

import strawberry

from db.control.retention import RetentionRule as StoredRule
from db.conversations.bulk_deletes import Deleted


@strawberry.type(description="How long a tenant's idle sessions are kept.")
class RetentionRule:
    tenant: str
    keep_days: int | None = strawberry.field(
        description="Sessions whose last activity is older than this many days are deleted; null: kept."
    )
    own: bool = strawberry.field(
        description="Set for this tenant by an admin; false: the server's default "
        "(SESSION_GRAPHQL_RETENTION_DAYS)."
    )
    updated_at: datetime | None = strawberry.field(description="When an admin last set this tenant's rule.")
    updated_by: str | None

    @classmethod
    def from_record(cls, rule: StoredRule) -> "RetentionRule":
        return cls(
            tenant=rule.tenant,
            keep_days=rule.keep_days,
            own=rule.own,
            updated_at=rule.updated_at,
            updated_by=rule.updated_by,
        )


@strawberry.type(description="What deleteSessions deleted, or with dryRun would delete.")
class SessionsDeleted:
    sessions: int
    messages: int

    @classmethod
    def from_record(cls, deleted: Deleted) -> "SessionsDeleted":
        return cls(sessions=deleted.sessions, messages=deleted.messages)
