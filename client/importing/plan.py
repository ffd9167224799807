"""What a directory given to ``session-graphql import`` holds, and which importer takes each part."""

from dataclasses import dataclass, field
from pathlib import Path

from client.importing.file_import import import_sessions
from client.importing.file_sessions import (
    SESSION_FILE,
    FileSessionStore,
    SessionFiles,
    Stray,
    is_session_directory,
    scan_session,
    visible_entries,
)
from client.importing.report import ImportReport
from client.importing.run import ImportRun
from client.importing.snapshots import (
    SESSIONS_NAMESPACE,
    SnapshotsFound,
    import_snapshots,
    is_snapshot_namespace,
    scan_snapshots,
)
from client.importing.target import ImportTarget, Progress


@dataclass
class ImportPlan:
    """The sessions found under ``directory``, by kind, found by file names alone."""

    directory: Path
    storage_dir: Path
    file_sessions: list[SessionFiles] = field(default_factory=list)
    snapshots: SnapshotsFound | None = None
    strays: list[Stray] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        """Nothing here looks like Strands sessions: most likely the wrong directory."""
        return not self.file_sessions and self.snapshots is None

    @property
    def message_count(self) -> int:
        return sum(files.message_count for files in self.file_sessions)

    @property
    def session_count(self) -> int:
        snapshot_sessions = 0 if self.snapshots is None else len(self.snapshots.session_ids)
        return len(self.file_sessions) + snapshot_sessions


def plan_import(directory: Path) -> ImportPlan:
    """Sorts out ``directory``: a ``FileSessionManager`` storage directory (``session_<id>/``
    directories), one such session directory itself, or a ``LocalFileStorage`` holding snapshots
    (``session/<id>/scopes/``), or that storage's ``session/`` directory."""
    if is_session_directory(directory) and (directory / SESSION_FILE).is_file():
        return ImportPlan(directory, directory.parent, file_sessions=[scan_session(directory)])
    plan = ImportPlan(directory, directory)
    if directory.name == SESSIONS_NAMESPACE and is_snapshot_namespace(directory):
        plan.snapshots = scan_snapshots(directory)
        return plan
    for entry in visible_entries(directory):
        if is_session_directory(entry):
            try:
                plan.file_sessions.append(scan_session(entry))
            except OSError as error:  # one unreadable session does not keep the others from moving
                plan.strays.append(Stray(entry, f"unreadable ({error.strerror or error})"))
        elif entry.name == SESSIONS_NAMESPACE and is_snapshot_namespace(entry):
            plan.snapshots = scan_snapshots(entry)
        else:
            plan.strays.append(Stray(entry, "unknown layout: neither a session_<id> directory nor snapshots"))
    return plan


def run_import(plan: ImportPlan, target: ImportTarget, report: ImportReport, progress: Progress) -> None:
    """Imports every part of ``plan`` it can, recording each outcome in ``report``.

    Raises ``ImportStopped`` for a failure that every later request would meet too.
    """
    if plan.file_sessions:
        run = ImportRun(plan.directory, FileSessionStore(plan.storage_dir), target, report, progress)
        import_sessions(run, plan.file_sessions)
    if plan.snapshots is not None:
        import_snapshots(plan.snapshots, target, report, progress)
    for stray in plan.strays:
        report.skip(_relative(stray.path, plan.directory), stray.reason)


def _relative(path: Path, directory: Path) -> str:
    shown = path.relative_to(directory) if path.is_relative_to(directory) and path != directory else path
    return f"{shown}/" if path.is_dir() else str(shown)
