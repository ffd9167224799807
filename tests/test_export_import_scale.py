"""Export and import of 10,000 messages in 10 sessions: memory stays bounded, and a killed import run
again goes on from where it was, the restored tenant then exporting exactly as the original.

Each command's peak is mostly the interpreter's own (about 130 MB, as at 100,000 messages): the
million messages of ``python -m bench.export_import`` are where a command holding records would
show. The size here leaves a killed import half its sessions still to do; an agent costs the
commands more than its messages do, so there are few and long ones."""

import asyncio
import gzip
import itertools
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.bulk_load import AGENT_NAMES, Layout, load
from bench.export_import import MB, Measured, measured
from tests.secured import secured_server
from tests.test_cli import clean_env
from tests.test_import import report_of

SESSIONS = 10
PER_AGENT = 200
MESSAGES = SESSIONS * len(AGENT_NAMES) * PER_AGENT
MAX_RSS = 200 * MB


def session_count(url: str, key: str, tenant: str) -> int:
    answer = httpx.post(
        url,
        json={"query": "{ sessions(first: 1) { totalCount } }"},
        headers={"Authorization": f"Bearer {key}", "X-Tenant": tenant},
        timeout=30,
    )
    return int(answer.json()["data"]["sessions"]["totalCount"])


def same_records(left: Path, right: Path) -> None:
    """The two files' records are equal, line by line, headers aside."""
    with gzip.open(left) as one, gzip.open(right) as other:
        pairs = itertools.zip_longest(one, other)
        next(pairs)
        for number, (a, b) in enumerate(pairs, start=2):
            assert a is not None and b is not None, f"line {number}: one file ends first"
            assert json.loads(a) == json.loads(b), f"line {number} differs"


def test_10000_messages_go_out_and_back_in_bounded_memory_and_a_killed_import_goes_on(
    database_url: str, tmp_path: Path
) -> None:
    with secured_server(database_url) as secured:
        url, admin = secured.server.url, secured.key("admin")
        libpq_url = "postgresql://" + secured.database_url.split("://", 1)[1]
        day_start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
        layout = Layout(sessions=SESSIONS, per_agent=PER_AGENT, day_start=day_start)
        asyncio.run(load(libpq_url, layout))
        env = clean_env()
        token = ["--url", url, "--token", admin]
        original, restored = tmp_path / "default.jsonl.gz", tmp_path / "copy.jsonl.gz"

        exported = measured(["export", *token, "--tenant", "default", "--output", str(original)], env=env)
        assert exported.returncode == 0, exported.stderr

        # Killed (SIGKILL, as the out-of-memory killer would) once a few sessions are in.
        sessions_in = threading.Event()

        def watch() -> None:
            while session_count(url, admin, "copy") < 5:
                time.sleep(0.2)
            sessions_in.set()

        threading.Thread(target=watch, daemon=True).start()
        importing = ["import", "--from-file", str(original), *token, "--tenant", "copy"]
        killed = measured(importing, env=env, kill_when=sessions_in)
        assert killed.returncode == -9, killed.stdout + killed.stderr
        resumed = measured(importing, env=env)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        report = report_of(resumed)
        assert report.rows["already present"]["messages"] > 0 and report.rows["imported"]["messages"] > 0
        stored = report.rows["already present"]["messages"] + report.rows["imported"]["messages"]
        assert stored == MESSAGES and report.rows["skipped"]["messages"] == 0

        again = measured(["export", *token, "--tenant", "copy", "--output", str(restored)], env=env)
        assert again.returncode == 0, again.stderr
        same_records(original, restored)
        show("export", exported)
        show("import, killed", killed)
        show("import, resumed", resumed)
        for run in (exported, killed, resumed, again):
            assert run.peak_rss < MAX_RSS, f"{run.peak_rss / MB:.0f} MB"


def show(name: str, run: Measured) -> None:
    print(f"{name}: {run.seconds:.1f} s, peak RSS {run.peak_rss / MB:.0f} MB")
