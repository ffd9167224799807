"""Migration 0004 on rows stored under 0003: the conversations stay as they were, none of them is
snapshot-backed, snapshots can be written next to them, and downgrading to 0003 gives back the
same rows."""

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import Connection, text

from client import GraphQLStorage
from db.migrate import alembic_config, upgrade
from graphql_api.settings import Settings
from tests.conftest import RunningServer
from tests.scratch_database import scratch_database
from tests.test_migration_facts import _fill_0002
from tests.test_migrations import inspect

TABLES = {
    "sessions": "session_id, tenant",
    "session_agents": "session_id, tenant, agent_id",
    "session_messages": "session_id, tenant, agent_id, message_id",
    "session_multi_agents": "session_id, tenant, multi_agent_id",
    "session_tool_calls": "session_id, tenant, agent_id, tool_use_id",
}
FLAGGED = ("sessions", "session_agents", "session_multi_agents")
SNAPSHOT = (
    b'{"scope": "agent", "schema_version": "1.0", "created_at": "2026-12-01T10:00:00Z", '
    b'"data": {"messages": [{"role": "user", "content": [{"text": "migrated neighbour"}]}], "state": {}}, '
    b'"app_data": {}}'
)


def _rows(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    return {
        name: [dict(row) for row in conn.execute(text(f"SELECT * FROM {name} ORDER BY {order}")).mappings()]
        for name, order in TABLES.items()
    }


@pytest.fixture
def stored_under_0003(database_url: str) -> Iterator[tuple[str, dict[str, list[dict[str, Any]]]]]:
    with scratch_database(database_url) as url:
        upgrade(url, "0002")
        inspect(url, _fill_0002)
        upgrade(url, "0003")
        before = inspect(url, _rows)
        assert sum(len(rows) for rows in before.values()) > 10
        upgrade(url)
        yield url, before


def test_upgrade_keeps_every_row_and_flags_none_as_snapshot_backed(
    stored_under_0003: tuple[str, dict[str, list[dict[str, Any]]]],
) -> None:
    url, before = stored_under_0003
    after = inspect(url, _rows)
    for name, rows in after.items():
        if name in FLAGGED:
            assert [row.pop("snapshot_backed") for row in rows] == [False] * len(rows)
        assert rows == before[name], name


def test_the_api_serves_migrated_sessions_and_takes_snapshots_beside_them(
    stored_under_0003: tuple[str, dict[str, list[dict[str, Any]]]],
) -> None:
    url, _ = stored_under_0003
    server = RunningServer(Settings(database_url=url))
    server.start()
    try:
        storage = GraphQLStorage(server.url, headers={"X-Tenant": "acme"})
        key = "session/snap-1/scopes/agent/a/snapshots/snapshot_latest.json"
        asyncio.run(storage.write(key, SNAPSHOT))
        body = httpx.post(
            server.url,
            json={"query": "{ sessions(first: 10) { nodes { sessionId snapshotBacked messageCount } } }"},
            headers={"X-Tenant": "acme"},
        ).json()
        assert asyncio.run(storage.read(key)) == SNAPSHOT
        storage.close()
    finally:
        server.stop()
    assert "errors" not in body, body
    nodes = {node["sessionId"]: node for node in body["data"]["sessions"]["nodes"]}
    assert nodes["snap-1"] == {"sessionId": "snap-1", "snapshotBacked": True, "messageCount": 1}
    assert [node["snapshotBacked"] for name, node in nodes.items() if name != "snap-1"] == [False] * (
        len(nodes) - 1
    )


def test_downgrade_to_0003_gives_back_the_same_rows(
    stored_under_0003: tuple[str, dict[str, list[dict[str, Any]]]],
) -> None:
    url, before = stored_under_0003
    command.downgrade(alembic_config(url), "0003")
    assert inspect(url, _rows) == before
    assert (
        inspect(url, lambda conn: conn.execute(text("SELECT to_regclass('storage_objects')")).scalar())
        is None
    )
