"""Retention: a tenant's rule, set by its admin through GraphQL, makes the background pass delete
exactly the sessions idle longer than the rule (with their storage objects, audited, out of the
statistics) while Strands agents keep writing, and a session an agent comes back to during the
pass survives. Another tenant, whose rule is the (unset) default, keeps everything."""

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

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
    set_idle,
)
from tests.secured import Secured, secured_server

A, B = "acme", "globex"
EXPIRED = 240
RULE_DAYS = 30
SET_RULE = """mutation($days: Int!, $tenant: String) {
  setRetentionRule(keepDays: $days, tenant: $tenant) { tenant keepDays own updatedBy }
}"""
RULES = "query($tenant: String) { retentionRules(tenant: $tenant) { tenant keepDays own } }"


@pytest.fixture(scope="module")
def secured(database_url: str) -> Iterator[Secured]:
    # A pass every 0.1 s, 4 sessions a batch: the pass runs long enough for an agent to come back.
    settings = Settings(
        limits=AGENTS_UNLIMITED, retention=RetentionSettings(interval_seconds=0.1, batch_size=4)
    )
    with secured_server(database_url, settings) as running:
        yield running


def test_a_tenant_rule_deletes_exactly_the_expired_sessions_while_agents_write(secured: Secured) -> None:
    url = secured.database_url
    root = secured.key("admin", label="root")
    a_admin = secured.key("admin", tenant=A, label="a-admin")
    a_writer = secured.key("writer", tenant=A)
    b_writer = secured.key("writer", tenant=B)
    start = datetime.now(UTC) - timedelta(days=1)
    expired = [f"old-{n:04d}" for n in range(EXPIRED)]
    kept = ["recent-1", "recent-2"]
    seed(secured, a_writer, [(s, {"team": "a"}) for s in [*expired, "revived", *kept]], start)
    seed(secured, b_writer, [(f"old-{n:04d}", {"team": "b"}) for n in range(20)], start)
    set_idle(url, A, expired, 100)
    set_idle(url, A, ["revived"], RULE_DAYS + 1)  # the last of the expired to go: oldest go first
    set_idle(url, A, kept, RULE_DAYS - 1)
    set_idle(url, B, [f"old-{n:04d}" for n in range(20)], 100)
    comeback = agent_on(secured.server.url, a_writer, "revived")  # reads only: still idle
    assert (
        count(
            url,
            "SELECT count(*) FROM sessions WHERE session_id = 'revived' "
            "AND last_activity_at < now() - interval '30 days'",
        )
        == 1
    )

    expired_messages = count(
        url, "SELECT count(*) FROM session_messages WHERE tenant = 'acme' AND session_id LIKE 'old-%'"
    )
    counted_before = retention_counts()
    writers = Writers(secured.server.url, a_writer, "fresh-")
    with writers.running(3):
        time.sleep(1.0)  # the agents are mid-conversation
        rule = data_of(secured.graphql(SET_RULE, {"days": RULE_DAYS}, key=a_admin))["setRetentionRule"]
        assert rule == {"tenant": A, "keepDays": RULE_DAYS, "own": True, "updatedBy": "key:a-admin"}
        deadline = time.monotonic() + 60
        while len(session_ids(url, A, "old-")) == EXPIRED:
            assert time.monotonic() < deadline, "the retention pass did not start"
            time.sleep(0.01)
        assert "revived" in session_ids(url, A), "the pass reached the revived session too soon"
        comeback("I am back")  # during the pass: the revived session is active again
        while session_ids(url, A, "old-"):
            assert time.monotonic() < deadline, "the retention pass did not finish"
            time.sleep(0.05)
        time.sleep(0.5)  # more writes, and more passes, after the last expired session went

    # Exactly the expired sessions went, with their objects; the rest is as the agents left it.
    assert session_ids(url, A) == {"revived", *kept, *writers.agents}
    assert session_ids(url, B) == {f"old-{n:04d}" for n in range(20)}
    stored = writers.stored_counts(url, A)
    assert stored == {s: len(agent.messages) for s, agent in writers.agents.items()}
    assert len(writers.agents) >= 3
    revived = count(
        url, "SELECT message_count FROM sessions WHERE tenant = 'acme' AND session_id = 'revived'"
    )
    assert revived == 4 + 2 == len(comeback.messages)
    assert (
        count(url, "SELECT count(*) FROM storage_objects WHERE tenant = 'acme' AND key LIKE 'session/old-%'")
        == 0
    )
    assert count(url, "SELECT count(*) FROM storage_objects WHERE tenant = 'globex'") == 20
    assert (
        count(url, "SELECT count(*) FROM session_messages WHERE tenant = 'acme' AND session_id LIKE 'old-%'")
        == 0
    )

    # Each deleted session is audited, by retention, with the rule; the admin's rule change too.
    audited = count(
        url,
        "SELECT count(DISTINCT session_id) FROM audit_events WHERE action = 'retention' AND tenant = 'acme' "
        "AND actor = 'retention' AND session_id LIKE 'old-%' "
        'AND target::jsonb = \'{"keepDays": 30, "rule": "tenant"}\'',
    )
    assert audited == EXPIRED
    assert count(url, "SELECT count(*) FROM audit_events WHERE action = 'retention'") == EXPIRED
    events = data_of(
        secured.graphql(
            '{ auditEvents(action: "setRetentionRule") { nodes { tenant actor target } } }', key=a_admin
        )
    )["auditEvents"]["nodes"]
    assert events == [{"tenant": A, "actor": "key:a-admin", "target": {"keepDays": RULE_DAYS}}]

    # The metrics count what retention deleted (the server runs in this process).
    sessions_counted, messages_counted = retention_counts()
    assert sessions_counted - counted_before[0] == EXPIRED
    assert messages_counted - counted_before[1] == expired_messages > 0

    assert_statistics_equal_the_rows(secured, root, [A, B], start, "after retention")


def retention_counts() -> tuple[float, float]:
    return tuple(  # type: ignore[return-value]
        REGISTRY.get_sample_value(f"session_graphql_retention_deleted_{what}_total") or 0.0
        for what in ("sessions", "messages")
    )


def test_rules_are_read_and_set_per_tenant_by_their_admins_only(secured: Secured) -> None:
    root = secured.key("admin", label="root-rules")
    c_admin = secured.key("admin", tenant="initech", label="admin-rules")
    c_writer = secured.key("writer", tenant="initech", label="writer-rules")
    c_reader = secured.key("reader", tenant="initech", label="reader-rules")

    for key in (c_writer, c_reader):
        assert_error(secured.graphql(SET_RULE, {"days": 1}, key=key), "FORBIDDEN")
        assert_error(secured.graphql(RULES, key=key), "FORBIDDEN")
        assert_error(
            secured.graphql('mutation { removeRetentionRule(tenant: "initech") }', key=key), "FORBIDDEN"
        )
    assert_error(secured.graphql(SET_RULE, {"days": 5, "tenant": A}, key=c_admin), "FORBIDDEN")
    assert_error(secured.graphql(SET_RULE, {"days": -1}, key=c_admin), "BAD_USER_INPUT", "keepDays")
    assert_error(secured.graphql(SET_RULE, {"days": 36501}, key=c_admin), "BAD_USER_INPUT", "keepDays")
    # A tenantless admin names the tenant it sets a rule for.
    assert_error(secured.graphql(SET_RULE, {"days": 5}, key=root), "BAD_USER_INPUT", "tenant")
    assert_error(secured.graphql(SET_RULE, {"days": 5, "tenant": "no spaces"}, key=root), "BAD_USER_INPUT")

    # No rule of its own and no default: kept.
    assert data_of(secured.graphql(RULES, key=c_admin))["retentionRules"] == [
        {"tenant": "initech", "keepDays": None, "own": False}
    ]
    data_of(secured.graphql(SET_RULE, {"days": 0}, key=c_admin))
    assert data_of(secured.graphql(RULES, key=c_admin))["retentionRules"] == [
        {"tenant": "initech", "keepDays": None, "own": True}
    ]
    data_of(secured.graphql(SET_RULE, {"days": 400, "tenant": "initech"}, key=root))
    every = data_of(secured.graphql(RULES, key=root))["retentionRules"]
    assert {"tenant": "initech", "keepDays": 400, "own": True} in every
    assert data_of(secured.graphql("mutation { removeRetentionRule }", key=c_admin)) == {
        "removeRetentionRule": True
    }
    assert data_of(secured.graphql("mutation { removeRetentionRule }", key=c_admin)) == {
        "removeRetentionRule": False
    }
    assert data_of(secured.graphql(RULES, {"tenant": "initech"}, key=root))["retentionRules"] == [
        {"tenant": "initech", "keepDays": None, "own": False}
    ]
    assert_error(secured.graphql(RULES, {"tenant": A}, key=c_admin), "FORBIDDEN")
