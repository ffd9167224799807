"""``session-graphql retention [--dry-run]`` on a DATABASE_URL: each tenant's rule and what would go,
one pass now (audited, under the replicas' lock: refused while a replica holds it), and mistakes
as one line."""

import subprocess
import threading

from sqlalchemy import Connection, text

from db.control.retention import RETENTION_LOCK
from db.migrate import upgrade
from tests.scratch_database import scratch_database
from tests.test_migrations import inspect, rows
from tests.test_token_cli import one_line_refusal, run_cli

# (tenant, session, days idle, messages)
SESSIONS = [
    ("acme", "old-1", 100, 3),
    ("acme", "old-2", 45, 2),
    ("acme", "new-1", 3, 4),
    ("globex", "old-1", 100, 1),
    ("initech", "old-1", 400, 5),
]


def _fill(conn: Connection) -> None:
    for tenant, session_id, days, messages in SESSIONS:
        conn.execute(
            text(
                "INSERT INTO sessions (session_id, tenant, session_type, last_activity_at, message_count) "
                "VALUES (:s, :t, 'AGENT', now() - make_interval(days => :d), :m)"
            ),
            {"s": session_id, "t": tenant, "d": days, "m": messages},
        )
    conn.execute(
        text("INSERT INTO retention_rules (tenant, keep_days, updated_by) VALUES ('globex', 0, 'ops')")
    )
    conn.commit()


def _ok(run: subprocess.CompletedProcess[str]) -> list[str]:
    assert run.returncode == 0, run.stderr
    return run.stdout.strip().splitlines()


def test_dry_run_says_each_tenants_rule_and_what_would_go_and_a_pass_deletes_it(database_url: str) -> None:
    days = {"SESSION_GRAPHQL_RETENTION_DAYS": "30"}
    with scratch_database(database_url) as url:
        upgrade(url)
        inspect(url, _fill)
        unset = _ok(run_cli("retention", "--dry-run", DATABASE_URL=url))
        dry = _ok(run_cli("retention", "--dry-run", DATABASE_URL=url, **days))
        one = _ok(run_cli("retention", "--dry-run", "--tenant", "acme", DATABASE_URL=url, **days))
        unchanged = inspect(url, rows("SELECT count(*) FROM sessions"))
        ran = _ok(run_cli("retention", DATABASE_URL=url, **days))
        left = inspect(url, rows("SELECT tenant, session_id FROM sessions ORDER BY 1, 2"))
        audited = inspect(
            url,
            rows(
                "SELECT tenant, session_id, actor FROM audit_events WHERE action = 'retention' ORDER BY 1, 2"
            ),
        )
        again = _ok(run_cli("retention", "--dry-run", DATABASE_URL=url, **days))

    assert unset == [
        "acme: kept (no default is set): 0 sessions (0 messages) would be deleted",
        "globex: kept (its own rule): 0 sessions (0 messages) would be deleted",
        "initech: kept (no default is set): 0 sessions (0 messages) would be deleted",
    ]
    assert dry == [
        "acme: 30 days (the default): 2 sessions (5 messages) would be deleted",
        "globex: kept (its own rule): 0 sessions (0 messages) would be deleted",
        "initech: 30 days (the default): 1 sessions (5 messages) would be deleted",
    ]
    assert one == ["acme: 30 days (the default): 2 sessions (5 messages) would be deleted"]
    assert unchanged == [(5,)]
    assert ran[0].startswith("retention: deleted 3 sessions (10 messages) in ")
    assert ran[1:] == ["acme: 2 sessions (5 messages)", "initech: 1 sessions (5 messages)"]
    assert left == [("acme", "new-1"), ("globex", "old-1")]
    actor = "session-graphql retention"
    assert audited == [("acme", "old-1", actor), ("acme", "old-2", actor), ("initech", "old-1", actor)]
    assert again[0] == "acme: 30 days (the default): 0 sessions (0 messages) would be deleted"


def test_a_pass_is_refused_while_a_replica_holds_the_lock(database_url: str) -> None:
    with scratch_database(database_url) as url:
        upgrade(url)
        inspect(url, _fill)
        held, release = threading.Event(), threading.Event()

        def hold(conn: Connection) -> None:
            conn.execute(text("SELECT pg_advisory_lock(:lock)"), {"lock": RETENTION_LOCK})
            held.set()
            release.wait(60)
            conn.execute(text("SELECT pg_advisory_unlock(:lock)"), {"lock": RETENTION_LOCK})

        holder = threading.Thread(target=inspect, args=(url, hold))
        holder.start()
        try:
            assert held.wait(30)
            refused = run_cli("retention", DATABASE_URL=url, SESSION_GRAPHQL_RETENTION_DAYS="30")
            dry = run_cli("retention", "--dry-run", DATABASE_URL=url, SESSION_GRAPHQL_RETENTION_DAYS="30")
        finally:
            release.set()
            holder.join()
        kept = inspect(url, rows("SELECT count(*) FROM sessions"))

    assert "a retention pass is running already" in one_line_refusal(refused)
    assert dry.returncode == 0  # a dry run reads, and needs no lock
    assert kept == [(5,)]


def test_retention_mistakes_are_one_line(database_url: str) -> None:
    with scratch_database(database_url) as url:
        unmigrated = run_cli("retention", "--dry-run", DATABASE_URL=url)
        upgrade(url)
        bad_tenant = run_cli("retention", "--dry-run", "--tenant", "no spaces", DATABASE_URL=url)
        tenant_pass = run_cli("retention", "--tenant", "acme", DATABASE_URL=url)
        bad_days = run_cli("retention", "--dry-run", DATABASE_URL=url, SESSION_GRAPHQL_RETENTION_DAYS="0")
    assert "not migrated" in one_line_refusal(unmigrated)
    assert "tenant 'no spaces'" in one_line_refusal(bad_tenant)
    assert "--tenant goes with --dry-run" in one_line_refusal(tenant_pass)
    assert "SESSION_GRAPHQL_RETENTION_DAYS" in one_line_refusal(bad_days)
