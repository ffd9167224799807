"""Strands' snapshot directories: what ``SnapshotSessionManager`` keeps in a ``LocalFileStorage``.

::

    <base_dir>/session/<session_id>/scopes/agent/<agent_id>/snapshots/snapshot_latest.json
                                                                    /immutable_history/snapshot_<uuid7>.json
    <base_dir>/session/<session_id>/scopes/multiAgent/<id>/snapshots/snapshot_latest.json

Each object is copied as it is, through ``GraphQLStorage`` (the server reads the snapshots into
sessions and agents). An object the server holds already with the same bytes is present; with other
bytes it is a conflict, reported and never overwritten. Immutable checkpoints go before the latest
snapshot, so a session is never shown at a state whose history is missing.
"""

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from strands.storage import LocalFileStorage
from strands.types.exceptions import StorageError

from client.importing.report import ImportReport, Kind
from client.importing.target import ImportTarget, Progress, check
from client.storage import GraphQLStorage, GraphQLStorageError

SESSIONS_NAMESPACE = "session"
STASH_NAMESPACE = "context"
SCOPES = "scopes"


@dataclass
class SnapshotsFound:
    """Snapshot sessions under ``base_dir`` (the ``LocalFileStorage`` base), counted by directory names."""

    base_dir: Path
    session_ids: list[str] = field(default_factory=list)
    agents: int = 0
    multi_agents: int = 0


def is_snapshot_namespace(path: Path) -> bool:
    """Whether ``path`` is the ``session/`` directory of a ``LocalFileStorage`` holding snapshots."""
    return path.is_dir() and any((child / SCOPES).is_dir() for child in path.iterdir())


def scan_snapshots(namespace: Path) -> SnapshotsFound:
    found = SnapshotsFound(base_dir=namespace.parent)
    for session in sorted(namespace.iterdir()):
        scopes = session / SCOPES
        if not scopes.is_dir():
            continue
        found.session_ids.append(session.name)
        found.agents += _directories_in(scopes / "agent")
        found.multi_agents += _directories_in(scopes / "multiAgent")
    return found


def _directories_in(path: Path) -> int:
    return sum(1 for entry in path.iterdir() if entry.is_dir()) if path.is_dir() else 0


LATEST = "snapshot_latest.json"


def kind_of(key: str) -> Kind | None:
    """What a key counts as in the report: an agent's or orchestrator's latest snapshot, or none."""
    if not key.endswith(f"/snapshots/{LATEST}"):
        return None
    return Kind.MULTI_AGENT if "/scopes/multiAgent/" in key else Kind.AGENT


def import_snapshots(
    found: SnapshotsFound, target: ImportTarget, report: ImportReport, progress: Progress
) -> None:
    """Copies every object of the snapshot sessions into ``target.storage``."""
    assert target.storage is not None
    asyncio.run(_import(found, target.storage, target.dry_run, report, progress))


async def _import(
    found: SnapshotsFound, storage: GraphQLStorage, dry_run: bool, report: ImportReport, progress: Progress
) -> None:
    source = LocalFileStorage(str(found.base_dir))
    for session_id in found.session_ids:
        # With the agents' context stash (Strands keeps it under context/<session>/), if any.
        keys = [
            key
            for namespace in (SESSIONS_NAMESPACE, STASH_NAMESPACE)
            for key in await source.list(f"{namespace}/{session_id}/")
        ]
        # Checkpoints first: a latest snapshot is never stored before the history it follows.
        ordered = sorted(keys, key=lambda key: key.endswith(LATEST))
        outcomes: set[str] = set()
        for key in ordered:
            outcomes.add(await _copy(key, source, storage, dry_run, report))
        if "imported" in outcomes:
            report.add_imported(Kind.SESSION)
        elif outcomes == {"present"}:
            report.add_present(Kind.SESSION)
        progress.session_done()


async def _copy(
    key: str, source: LocalFileStorage, storage: GraphQLStorage, dry_run: bool, report: ImportReport
) -> str:
    kind = kind_of(key)
    counts = {"agents": int(kind is Kind.AGENT), "multi_agents": int(kind is Kind.MULTI_AGENT)}
    try:
        data = await source.read(key)
    except (OSError, StorageError) as error:
        report.skip(key, f"unreadable ({error})", **counts)
        return "skipped"
    if data is None:  # deleted while the import ran
        return "gone"
    try:
        stored = await storage.read(key)
        if stored == data:
            if kind is not None:
                report.add_present(kind)
            return "present"
        if stored is not None:
            report.skip(
                key, "conflict: the server holds other bytes under this key; not overwritten", **counts
            )
            return "skipped"
        if not dry_run:
            await storage.write(key, data)
    except GraphQLStorageError as error:
        cause = error.__cause__
        if cause is not None and hasattr(cause, "code"):
            check(cause)  # type: ignore[arg-type]  # a GraphQLSessionError: stops the import when fatal
        report.skip(key, f"refused ({error.code}): {error}", **counts)
        return "skipped"
    if kind is not None:
        report.add_imported(kind)
    return "imported"
