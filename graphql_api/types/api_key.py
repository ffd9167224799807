"""API keys as admins see them: never the secret, except once in ``NewApiKey`` when made."""

from datetime import datetime
from enum import Enum

import strawberry

from db.records import ApiKeyRecord, record_of
from graphql_api.auth.identity import Role


@strawberry.enum(description="What a key may do: READER queries, WRITER also writes, ADMIN also deletes.")
class KeyRole(Enum):
    READER = "reader"
    WRITER = "writer"
    ADMIN = "admin"

    def role(self) -> Role:
        return Role(self.value)


@strawberry.type(description="An API key, without its secret.")
class ApiKey:
    label: str
    key_id: str = strawberry.field(description="The public part of the key (after sgq_).")
    role: KeyRole
    tenant: str | None = strawberry.field(description="Null: the key is bound to no tenant.")
    created_at: datetime
    created_by: str
    last_used_at: datetime | None = strawberry.field(
        description="Recorded by each replica every few seconds."
    )
    revoked_at: datetime | None

    @classmethod
    def from_record(cls, record: ApiKeyRecord) -> "ApiKey":
        return record_of(cls, record, shared_only=True, role=KeyRole(record.role))


@strawberry.type(description="A key just made.")
class NewApiKey:
    key: str = strawberry.field(description="The key itself, shown only this once: only its hash is stored.")
    api_key: ApiKey
