"""Strands' ``Storage`` protocol as root fields (``client.GraphQLStorage`` calls them), and forks.

Objects live in the caller's tenant. Bytes travel as base64 (``Base64``), and come back exactly as
they were written.
"""

import strawberry

from db.storage import forks, objects
from graphql_api.context import Info
from graphql_api.errors import ErrorCode, InputError, LimitError
from graphql_api.guards.arguments import check_id, check_page_size
from graphql_api.types.scalars import Base64, base64_decoded_size
from graphql_api.types.session import Session
from graphql_api.types.storage import StorageKeyPage, StorageObjectInfo, StorageSearchHit

SEARCH_PAGE = 100


def _check_text(field: str, value: str, most: int = 10_000) -> str:
    if len(value) > most:
        raise InputError(field, f"is longer than {most} characters")
    return value


@strawberry.type
class StorageQuery:
    @strawberry.field(
        description="The bytes stored under a key (normalized as Strands' backends do), or null."
    )
    async def storage_object(self, info: Info, key: str) -> Base64 | None:
        scope = info.context.scope
        # Reads take turns within the answer's bytes, so fifty aliases of a 10 MiB object stop at
        # the budget instead of all being read at once; a larger object is not read at all.
        found = await info.context.read(
            lambda conn, most: objects.read_object(conn, scope, key, most_bytes=base64_decoded_size(most))
        )
        return None if found is None else Base64(found)

    @strawberry.field(
        description="Keys starting with prefix (empty: all) in code point order, as Storage.list "
        "returns them; page with after = the last key of the page before."
    )
    async def storage_keys(
        self, info: Info, prefix: str = "", after: str | None = None, first: int | None = None
    ) -> StorageKeyPage:
        most = info.context.limits.max_list_size
        size = most if first is None else check_page_size("first", first, most)
        scope = info.context.scope
        keys, more = await info.context.db.run(
            lambda conn: objects.list_keys(conn, scope, prefix, after, size), idempotent=True
        )
        return StorageKeyPage(keys=keys, has_next_page=more)

    @strawberry.field(
        description="Objects under prefix whose text (a snapshot's messages, a JSON object's strings) "
        "matches a web search query, best first."
    )
    async def search_storage(
        self, info: Info, query: str, prefix: str = "", first: int = SEARCH_PAGE
    ) -> list[StorageSearchHit]:
        check_page_size("first", first, info.context.limits.max_page_size)
        _check_text("query", query)
        scope = info.context.scope
        found = await info.context.db.run(
            lambda conn: objects.search_objects(conn, scope, query, prefix, first), idempotent=True
        )
        return [StorageSearchHit(key=match.key, score=match.score) for match in found]


@strawberry.type
class StorageMutation:
    @strawberry.mutation(
        description="Store bytes under a key, replacing what it held. An immutable snapshot key "
        "(immutable_history/) holding other bytes is a CONFLICT; the same bytes succeed (safe to "
        "retry). A Strands snapshot key is read into its session and agent (snapshotBacked)."
    )
    async def write_storage_object(self, info: Info, key: str, data: Base64) -> StorageObjectInfo:
        most = info.context.limits.max_object_bytes
        if len(data) > most:
            raise LimitError(
                ErrorCode.OBJECT_TOO_LARGE, f"data: {len(data)} bytes, more than the {most} allowed", "data"
            )
        scope, stored, depth = info.context.scope, bytes(data), info.context.limits.max_json_depth
        record = await info.context.write(
            lambda conn: objects.write_object(conn, scope, key, stored, max_depth=depth),
            idempotent=True,
            transaction=True,
        )
        return StorageObjectInfo.from_record(record)

    @strawberry.mutation(
        description="Delete the object under a key; false when there was none. An agent's latest "
        "snapshot takes its agent with it, and a snapshot-backed session goes with its last object."
    )
    async def delete_storage_object(self, info: Info, key: str) -> bool:
        scope, actor = info.context.scope, info.context.actor
        return await info.context.write(
            lambda conn: objects.delete_object(conn, scope, key, actor),
            idempotent=True,
            transaction=True,
        )

    @strawberry.mutation(
        description="Copy a session into a new one an agent can resume from, with either session "
        "manager: everything it holds, or with agentId only that agent, as it is now or with "
        "atSnapshotId as of one of its checkpoints. ALREADY_EXISTS if newSessionId is taken."
    )
    async def fork_session(
        self,
        info: Info,
        source_session_id: str,
        new_session_id: str,
        agent_id: str | None = None,
        at_snapshot_id: str | None = None,
    ) -> Session:
        check_id("sourceSessionId", source_session_id)
        check_id("newSessionId", new_session_id)
        if agent_id is not None:
            check_id("agentId", agent_id)
        if at_snapshot_id is not None:
            check_id("atSnapshotId", at_snapshot_id)
            if agent_id is None:
                raise InputError("agentId", "is needed with atSnapshotId: a checkpoint is one agent's")
        scope = info.context.scope
        point = None if agent_id is None else forks.ForkPoint(agent_id, at_snapshot_id)
        record = await info.context.write(
            lambda conn: forks.fork_session(conn, scope, source_session_id, new_session_id, point),
            transaction=True,
        )
        return Session.from_record(record)
