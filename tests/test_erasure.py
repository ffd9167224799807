"""Erasure: ``deleteSessions(filter:)`` deletes exactly what ``sessions(filter:)`` lists, with
storage objects and everything in the sessions, audited with its filter, for admins only; a dry
run counts and changes nothing; a filter naming nothing is refused; other tenants are untouched;
the statistics stay exact."""

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, text

from db.analytics.filters import ConversationFilter
from db.conversations import bulk_deletes
from db.conversations.bulk_deletes import Deleted
from db.engine import Database, create_engine
from db.errors import ConflictError
from db.records import Actor
from db.tenancy import Scope
from graphql_api.settings import RetentionSettings, Settings
from tests.api_calls import assert_error, data_of
from tests.bulk_delete_support import (
    AGENTS_UNLIMITED,
    Writers,
    agent_on,
    assert_statistics_equal_the_rows,
    count,
    seed,
    session_ids,
)
from tests.secured import Secured, secured_server
from tests.test_migrations import inspect

A, B = "acme", "globex"
DELETE = """mutation($f: ConversationFilter!, $dry: Boolean!) {
  deleteSessions(filter: $f, dryRun: $dry) { sessions messages }
}"""
LISTED = (
    "query($f: ConversationFilter) { sessions(filter: $f, first: 1000) { totalCount nodes { sessionId } } }"
)
ANA = {"labels": {"user": "ana"}}


class Store:
    def __init__(self, secured: Secured) -> None:
        self.secured = secured
        self.root = secured.key("admin", label="root")
        self.keys = {
            (tenant, role): secured.key(role, tenant=tenant, label=f"{tenant}-{role}")
            for tenant in (A, B)
            for role in ("reader", "writer", "admin")
        }
        self.start = datetime.now(UTC) - timedelta(hours=20)

    def call(
        self, tenant: str, role: str, query: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return self.secured.graphql(query, variables, key=self.keys[(tenant, role)])

    def everything(self) -> Any:
        """Every row of every table a delete could touch, and the audit log's size."""
        return [
            count(self.secured.database_url, f"SELECT count(*) FROM {table}")
            for table in (
                "sessions",
                "session_agents",
                "session_messages",
                "session_tool_calls",
                "storage_objects",
                "audit_events",
            )
        ]


@pytest.fixture(scope="module")
def store(database_url: str) -> Iterator[Store]:
    # Two sessions a batch: an erasure of a few sessions still takes several transactions.
    settings = Settings(limits=AGENTS_UNLIMITED, retention=RetentionSettings(batch_size=2))
    with secured_server(database_url, settings) as secured:
        made = Store(secured)
        for tenant in (A, B):
            sessions = [(f"ana-{n}", {"user": "ana", "team": "a"}) for n in range(5)]
            sessions += [(f"bob-{n}", {"user": "bob", "team": "b"}) for n in range(3)]
            sessions += [(f"carol-{n}", {"user": "carol"}) for n in range(2)]
            seed(secured, made.keys[(tenant, "writer")], sessions, made.start)
        yield made


def test_a_filter_naming_nothing_is_refused_and_changes_nothing(store: Store) -> None:
    before = store.everything()
    for nothing in ({}, {"created": {}}, {"labels": {}}):
        for dry in (True, False):
            error = assert_error(store.call(A, "admin", DELETE, {"f": nothing, "dry": dry}), "BAD_USER_INPUT")
            assert "filter" in error["message"]
    assert store.everything() == before


@pytest.mark.parametrize("role", ["reader", "writer"])
def test_only_admins_may_delete_sessions(store: Store, role: str) -> None:
    before = store.everything()
    for dry in (True, False):
        error = assert_error(store.call(A, role, DELETE, {"f": ANA, "dry": dry}), "FORBIDDEN")
        assert "deleteSessions needs the admin role" in error["message"]
    assert store.everything() == before


def test_a_dry_run_counts_what_would_go_and_changes_nothing(store: Store) -> None:
    before = store.everything()
    counted = data_of(store.call(A, "admin", DELETE, {"f": ANA, "dry": True}))["deleteSessions"]
    by_tool = data_of(store.call(A, "admin", DELETE, {"f": {"toolName": "refund"}, "dry": True}))

    assert counted == {"sessions": 5, "messages": 20}
    # A message condition selects the sessions having such a message: those sessions(filter:) lists.
    listed = data_of(store.call(A, "reader", LISTED, {"f": {"toolName": "refund"}}))["sessions"]["totalCount"]
    assert by_tool["deleteSessions"]["sessions"] == listed
    assert 0 < listed < 10
    assert store.everything() == before


def test_erasure_by_label_deletes_that_users_sessions_of_the_tenant_only_and_audits_it(store: Store) -> None:
    url = store.secured.database_url
    b_before = session_ids(url, B)
    gone_listed = data_of(store.call(A, "reader", LISTED, {"f": ANA}))["sessions"]["nodes"]

    # Agents write in the tenant meanwhile, and one of ana's sessions is written to as it is erased.
    writers = Writers(store.secured.server.url, store.keys[(A, "writer")], "live-")
    with writers.running(2):
        deleted = data_of(store.call(A, "admin", DELETE, {"f": ANA, "dry": False}))["deleteSessions"]

    assert deleted == {"sessions": 5, "messages": 20}
    assert {node["sessionId"] for node in gone_listed} == {f"ana-{n}" for n in range(5)}
    assert session_ids(url, A, "ana-") == set()
    assert session_ids(url, A, "bob-") == {f"bob-{n}" for n in range(3)}
    assert session_ids(url, A, "live-") == set(writers.agents)
    assert session_ids(url, B) == b_before  # globex's ana keeps her sessions
    assert (
        count(url, "SELECT count(*) FROM storage_objects WHERE tenant = 'acme' AND key LIKE 'session/ana-%'")
        == 0
    )
    assert (
        count(
            url, "SELECT count(*) FROM storage_objects WHERE tenant = 'globex' AND key LIKE 'session/ana-%'"
        )
        == 5
    )
    assert data_of(store.call(A, "reader", '{ session(sessionId: "ana-1") { sessionId } }')) == {
        "session": None
    }
    # Writing to an erased session is NOT_FOUND, and makes nothing half-way.
    late = store.call(
        A,
        "writer",
        'mutation { createAgent(sessionId: "ana-1", agent: {agentId: "late", state: {}, '
        "conversationManagerState: {}}) { agentId } }",
    )
    assert_error(late, "NOT_FOUND")
    assert (
        count(url, "SELECT count(*) FROM session_agents WHERE tenant = 'acme' AND session_id = 'ana-1'") == 0
    )

    events = data_of(
        store.call(
            A,
            "admin",
            '{ auditEvents(action: "deleteSessions", first: 50) '
            "{ nodes { tenant actor sessionId target } } }",
        )
    )["auditEvents"]["nodes"]
    request = [event for event in events if event["sessionId"] is None]
    assert request == [
        {
            "tenant": A,
            "actor": "key:acme-admin",
            "sessionId": None,
            "target": {"filter": ANA, "sessions": 5, "messages": 20},
        }
    ]
    assert sorted(event["sessionId"] for event in events if event["sessionId"]) == [
        f"ana-{n}" for n in range(5)
    ]
    assert all(event["target"] == {"filter": ANA} for event in events if event["sessionId"])
    b_events = data_of(
        store.call(B, "admin", '{ auditEvents(action: "deleteSessions") { nodes { tenant } } }')
    )
    assert b_events["auditEvents"]["nodes"] == []

    assert_statistics_equal_the_rows(
        store.secured, store.root, [A, B], store.start, "after erasing ana in acme"
    )


def test_a_tenantless_admin_erases_a_user_in_every_tenant(store: Store) -> None:
    url = store.secured.database_url
    carol = {"labels": {"user": "carol"}}

    counted = data_of(store.secured.graphql(DELETE, {"f": carol, "dry": True}, key=store.root))
    deleted = data_of(store.secured.graphql(DELETE, {"f": carol, "dry": False}, key=store.root))
    again = data_of(store.secured.graphql(DELETE, {"f": carol, "dry": False}, key=store.root))

    assert counted["deleteSessions"] == deleted["deleteSessions"] == {"sessions": 4, "messages": 16}
    assert again["deleteSessions"] == {"sessions": 0, "messages": 0}
    assert session_ids(url, A, "carol-") == session_ids(url, B, "carol-") == set()
    assert session_ids(url, B, "bob-") == {f"bob-{n}" for n in range(3)}
    audited = count(
        url, "SELECT count(*) FROM audit_events WHERE action = 'deleteSessions' AND session_id LIKE 'carol-%'"
    )
    assert audited == 4


def test_an_agent_writing_to_a_session_being_erased_gets_not_found_or_its_write_is_erased(
    store: Store,
) -> None:
    """Whatever the interleaving, nothing of the session is left: no half-written agent."""
    url = store.secured.database_url
    agent = agent_on(store.secured.server.url, store.keys[(B, "writer")], "bob-0")
    erased: dict[str, Any] = {}

    def erase() -> None:
        erased.update(store.call(B, "admin", DELETE, {"f": {"labels": {"user": "bob"}}, "dry": False}))

    thread = threading.Thread(target=erase)
    thread.start()
    try:
        agent("one more thing")
    except Exception as error:  # the session went first: the client's not-found error
        assert "not found" in str(error).lower(), error
    thread.join(timeout=60)

    assert data_of(erased)["deleteSessions"]["sessions"] == 3
    assert session_ids(url, B, "bob-") == set()
    assert (
        count(url, "SELECT count(*) FROM session_agents WHERE tenant = 'globex' AND session_id = 'bob-0'")
        == 0
    )
    assert (
        count(url, "SELECT count(*) FROM session_messages WHERE tenant = 'globex' AND session_id = 'bob-0'")
        == 0
    )


def test_an_erasure_waits_for_a_session_being_written_then_says_what_it_left(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session an agent holds stays (never a half-deleted one); the rest go; CONFLICT names it."""
    url = store.secured.database_url
    seed(
        store.secured,
        store.keys[(B, "writer")],
        [(f"dave-{n}", {"user": "dave"}) for n in range(4)],
        store.start,
    )
    monkeypatch.setattr(bulk_deletes, "BUSY_PATIENCE_SECONDS", 0.5)
    held, release = threading.Event(), threading.Event()

    def write_for_long(conn: Connection) -> None:
        # What an agent's write holds while its statement runs: the session's row.
        conn.execute(
            text("SELECT 1 FROM sessions WHERE tenant = 'globex' AND session_id = 'dave-2' FOR UPDATE")
        )
        held.set()
        release.wait(60)
        conn.rollback()

    async def erase() -> Any:
        database = Database(create_engine(url, pool_size=2, max_overflow=0))
        try:
            return await bulk_deletes.delete_sessions(
                database,
                Scope(B),
                ConversationFilter(labels=(("user", "dave"),)),
                most=1,
                actor=Actor("test", "admin"),
                filter_given={"labels": {"user": "dave"}},
            )
        finally:
            await database.dispose()

    writer = threading.Thread(target=inspect, args=(url, write_for_long))
    writer.start()
    try:
        assert held.wait(30)
        with pytest.raises(ConflictError, match="1 matching sessions stayed busy"):
            asyncio.run(erase())
    finally:
        release.set()
        writer.join()

    assert session_ids(url, B, "dave-") == {"dave-2"}
    assert (
        count(url, "SELECT count(*) FROM session_messages WHERE tenant = 'globex' AND session_id = 'dave-2'")
        == 4
    )
    assert asyncio.run(erase()) == Deleted(1, 4)
