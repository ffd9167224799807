"""Conversations and swarms outlive the process that ran them: each step here is its own Python
process (tests/client_agent_script.py), talking to the same server."""

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client import GraphQLSessionRepository
from tests.client_agent_script import CRASH_EXIT_CODE, SWARM_ID
from tests.conftest import RunningServer

NewId = Callable[[str], str]
REPO_ROOT = Path(__file__).resolve().parent.parent


def run_script(*args: str, expect_exit: int = 0) -> dict[str, Any]:
    finished = subprocess.run(
        [sys.executable, "-m", "tests.client_agent_script", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == expect_exit, finished.stderr
    output: dict[str, Any] = json.loads(finished.stdout.splitlines()[-1]) if expect_exit == 0 else {}
    return output


def test_a_conversation_continues_in_a_new_process(server: RunningServer, new_id: NewId) -> None:
    session_id = new_id("session")
    remember = 'use remember {"key": "city", "value": "Lisbon"}'
    first = run_script("agent", server.url, session_id, "support", "hello", remember)

    second = run_script("agent", server.url, session_id, "support", "what do you remember?")

    assert first["restored_messages"] == 0
    assert second["restored_messages"] == 6
    assert second["state"] == {"city": "Lisbon"}
    assert second["replies"] == [
        f"echo: what do you remember? | I see: hello / {remember} / what do you remember?"
    ]


def test_a_swarm_resumes_in_a_new_process_after_a_crash(server: RunningServer, new_id: NewId) -> None:
    session_id = new_id("session")
    run_script("swarm", server.url, session_id, "--writer-crashes", expect_exit=CRASH_EXIT_CODE)
    stored = GraphQLSessionRepository(server.url).read_multi_agent(session_id, SWARM_ID)
    assert stored is not None
    assert (stored["status"], stored["node_history"], stored["next_nodes_to_execute"]) == (
        "executing",
        ["researcher"],
        ["writer"],
    )

    resumed = run_script("swarm", server.url, session_id)

    assert resumed == {
        "status": "completed",
        "node_history": ["researcher", "writer"],
        "results": {"researcher": "handed off", "writer": "the report"},
        "model_calls": {"researcher": 0, "writer": 1},
    }
