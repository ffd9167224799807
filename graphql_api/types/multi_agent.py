"""The MultiAgent type: the serialized state of a Strands Graph or Swarm."""

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from db.errors import NotFoundError
from db.records import MultiAgentRecord, SessionKey, record_of
from graphql_api.context import Info
from graphql_api.types.scalars import JSON

if TYPE_CHECKING:
    from graphql_api.types.session import Session


@strawberry.type(description="A multi-agent (Graph or Swarm) state, as serialize_state() returned it.")
class MultiAgent:
    session_id: str
    tenant: strawberry.Private[str]
    multi_agent_id: str
    state: JSON
    created_at: datetime
    updated_at: datetime
    snapshot_backed: bool = strawberry.field(
        description="Written by Strands' SnapshotSessionManager through the storage API (GraphQLStorage)."
    )

    @classmethod
    def from_record(cls, record: MultiAgentRecord) -> "MultiAgent":
        return record_of(cls, record, shared_only=True)

    @strawberry.field
    async def session(self, info: Info) -> Annotated["Session", strawberry.lazy("graphql_api.types.session")]:
        from graphql_api.types.session import Session

        record = await info.context.loaders.session.load(SessionKey(self.tenant, self.session_id))
        if record is None:  # deleted while this request ran
            raise NotFoundError(f"session {self.session_id!r} of multi-agent {self.multi_agent_id!r} is gone")
        return Session.from_record(record)
