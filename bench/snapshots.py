"""Strands' SnapshotSessionManager on GraphQLStorage against the same on LocalFileStorage.

    python -m bench.snapshots [--messages 1000,5000] [--saves 20] [--url URL [--token KEY]]

For each conversation length, an agent of that many ~1 KB messages is saved once, then two
messages are added and ``snapshot_latest`` saved ``--saves`` times (what ``save_latest_on=
"invocation"`` costs after each turn: the whole agent is written, and the server reads the new
messages into the session tables), and it is restored into a new agent ``--saves`` times. Prints
the medians, and each one's ratio to LocalFileStorage's in the same run. Without ``--url`` it
starts its own server on a fresh database, as ``python -m bench`` does.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from strands import Agent
from strands.session.snapshot_session_manager import SnapshotSessionManager
from strands.storage import LocalFileStorage, Storage

from bench.fresh_database import fresh_database
from bench.server_process import running_server
from client import GraphQLStorage

FILLER = "The order was refunded to the original card; the bank shows it within five days. " * 12


def _message(number: int) -> dict[str, Any]:
    role = "user" if number % 2 == 0 else "assistant"
    return {"role": role, "content": [{"text": f"{number}: {FILLER}"}]}


def _agent(manager: SnapshotSessionManager | None = None) -> Agent:
    return Agent(agent_id="bench", session_manager=manager, callback_handler=None)


def _timed(work: Any, times: int) -> list[float]:
    spent = []
    for _ in range(times):
        start = time.perf_counter()
        work()
        spent.append(time.perf_counter() - start)
    return spent


def measure(storage: Storage, messages: int, saves: int) -> tuple[float, float]:
    """Median seconds of a save after a two-message turn, and of a restore."""
    session_id = f"bench-{uuid.uuid4().hex[:8]}"
    manager = SnapshotSessionManager(session_id=session_id, storage=storage)
    agent = _agent(manager)
    agent.messages.extend(_message(n) for n in range(messages))
    asyncio.run(manager.save_snapshot(agent, is_latest=True))

    def turn() -> None:
        agent.messages.extend(_message(len(agent.messages) + n) for n in range(2))
        asyncio.run(manager.save_snapshot(agent, is_latest=True))

    save = _timed(turn, saves)

    def restore() -> None:
        fresh = _agent(SnapshotSessionManager(session_id=session_id, storage=storage))
        assert len(fresh.messages) == len(agent.messages)

    return statistics.median(save), statistics.median(_timed(restore, saves))


def report(url: str, token: str | None, sizes: list[int], saves: int) -> None:
    remote = GraphQLStorage(url, token=token)
    print(f"{'messages':>8}  {'backend':<17} {'save after a turn':>18} {'restore':>10}")
    with tempfile.TemporaryDirectory(prefix="sgq-snapshots-") as directory:
        local = LocalFileStorage(directory)
        measure(remote, 50, 3)  # connections, caches, plans
        for size in sizes:
            local_save, local_restore = measure(local, size, saves)
            save, restore = measure(remote, size, saves)
            local_row = f"{local_save * 1e3:15.1f} ms {local_restore * 1e3:7.1f} ms"
            print(f"{size:>8}  {'LocalFileStorage':<17} {local_row}")
            print(
                f"{size:>8}  {'GraphQLStorage':<17} {save * 1e3:15.1f} ms {restore * 1e3:7.1f} ms"
                f"   ({save / local_save:.1f}x, {restore / local_restore:.1f}x local)"
            )
    remote.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", default="1000,5000", help="conversation lengths, comma-separated")
    parser.add_argument("--saves", type=int, default=20)
    parser.add_argument("--url", help="a running server's GraphQL endpoint (default: start one)")
    parser.add_argument("--token", help="a writer key for --url, if it needs one")
    args = parser.parse_args()
    sizes = [int(size) for size in args.messages.split(",")]
    if args.url:
        report(args.url, args.token, sizes, args.saves)
        return
    with (
        tempfile.TemporaryDirectory(prefix="sgq-bench-") as workdir,
        fresh_database(Path(workdir)) as database,
        running_server(database) as server,
    ):
        report(server.url, server.token, sizes, args.saves)


if __name__ == "__main__":
    main()
