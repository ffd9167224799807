"""``session-graphql rollups status | rebuild`` on a DATABASE_URL: the queue and lag, a rebuild that
takes in every bucket and the configured label keys, one tenant's rebuild, and mistakes as one line."""

import subprocess

from db.migrate import upgrade
from tests.scratch_database import scratch_database
from tests.test_migration_rollups import _fill_0005
from tests.test_migrations import inspect, rows
from tests.test_token_cli import one_line_refusal, run_cli


def _ok(run: subprocess.CompletedProcess[str]) -> list[str]:
    assert run.returncode == 0, run.stderr
    return run.stdout.strip().splitlines()


def test_status_shows_the_queue_and_rebuild_folds_it_with_the_configured_label_keys(
    database_url: str,
) -> None:
    with scratch_database(database_url) as url:
        upgrade(url, "0005")
        inspect(url, _fill_0005)
        upgrade(url)

        queued = _ok(run_cli("rollups", "status", DATABASE_URL=url))
        rebuilt = _ok(run_cli("rollups", "rebuild", DATABASE_URL=url, SESSION_GRAPHQL_ROLLUP_LABELS="team"))
        after = _ok(run_cli("rollups", "status", DATABASE_URL=url))
        one_tenant = _ok(run_cli("rollups", "rebuild", "--tenant", "acme", DATABASE_URL=url))
        kept = inspect(url, rows("SELECT DISTINCT labels::text FROM message_rollups ORDER BY 1"))
        per_tenant = inspect(
            url, rows("SELECT tenant, sum(messages) FROM message_rollups GROUP BY 1 ORDER BY 1")
        )

    assert queued[0] == "queued: 4 writes in 4 buckets"
    assert queued[2] == "label keys: none"
    assert rebuilt[0].startswith(
        "session-graphql: rollups of every tenant rebuilt from the rows: 4 buckets in "
    )
    assert rebuilt[0].endswith("(label keys: team)")
    assert after == [
        "queued: 0 writes in 0 buckets",
        "lag: 0.0 s (since the oldest queued write)",
        "label keys: team",
    ]
    assert one_tenant[0].startswith(
        "session-graphql: rollups of tenant acme rebuilt from the rows: 3 buckets"
    )
    assert kept == [('{"team": "red"}',)]
    assert per_tenant == [("acme", 6), ("default", 2)]


def test_rollup_mistakes_are_one_line(database_url: str) -> None:
    with scratch_database(database_url) as url:
        unmigrated = run_cli("rollups", "status", DATABASE_URL=url)
        upgrade(url)
        bad_tenant = run_cli("rollups", "rebuild", "--tenant", "no spaces", DATABASE_URL=url)
    assert "not migrated" in one_line_refusal(unmigrated)
    assert "tenant 'no spaces'" in one_line_refusal(bad_tenant)
