"""Strands' snapshot directories: what ``SnapshotSessionManager`` keeps in a ``LocalFileStorage``.

::

    <base_dir>/session/<session_id>/scopes/agent/<agent_id>/snapshots/snapshot_latest.json
                                                                    /immutable_history/snapshot_<uuid7>.json
    <base_dir>/session/<session_id>/scopes/multiAgent/<id>/snapshots/snapshot_latest.json

They are found and reported, not imported yet: the session store has no ``Storage`` client so far.
Once ``client.GraphQLStorage`` (an async Strands ``Storage`` over the API) exists, importing them is
one function, called by ``client.importing.run_import`` in place of ``report_snapshots_unsupported``::

    async def import_snapshots(found: SnapshotsFound, storage: Storage, report: ImportReport,
                               progress: Progress) -> None:
        source = LocalFileStorage(str(found.base_dir))
        for key in await source.list("session/"):
            ...  # compare with await storage.read(key), write what is missing, report conflicts

with ``storage`` built beside the repository in ``ImportTarget``.
"""

from dataclasses import dataclass, field
from pathlib import Path

from client.importing.report import ImportReport

SESSIONS_NAMESPACE = "session"
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


def report_snapshots_unsupported(found: SnapshotsFound, where: str, report: ImportReport) -> None:
    report.skip(
        where,
        "snapshot directories: not yet supported",
        sessions=len(found.session_ids),
        agents=found.agents,
        multi_agents=found.multi_agents,
    )
