"""``session-graphql export``: a tenant's sessions, through the API, as a JSON Lines file.

A file of the export format (``client.exporting.records``) that ``session-graphql import
--from-file`` restores into any server and tenant. The file is written under a temporary name and
renamed when complete, so a failed export never leaves a file that looks whole.
"""

import argparse
import os
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from client import GraphQLSessionError, GraphQLSessionRepository
from client.exporting.export import Exporter, Selection
from client.exporting.records import encode, header, opened_for_writing
from db.models import DEFAULT_TENANT
from graphql_api.cli.importing import (
    EXIT_NOT_RUN,
    EXIT_SKIPPED,
    PROBE_SESSION_ID,
    TOKEN_VARIABLE,
    Mistake,
    connect,
    explain,
)


def run(args: argparse.Namespace) -> int:
    """The command; 0 when everything asked for was exported, 1 when a session named was not
    found, 2 when it could not run or had to stop (one line on stderr says why)."""
    try:
        if args.since is not None and args.session:
            raise Mistake("--since and --session choose sessions in two ways: give one of them")
        since = _since(args.since)
        token = args.token or os.environ.get(TOKEN_VARIABLE) or None
        connect(args.url, token, args.tenant).close()
        tenant = args.tenant if args.tenant is not None else _own_tenant(args.url, token)
        repository = connect(args.url, token, tenant)
    except Mistake as mistake:
        print(f"session-graphql: {mistake}", file=sys.stderr)
        return EXIT_NOT_RUN
    selection = Selection(since=since, session_ids=tuple(args.session or ()))
    output: Path | None = args.output
    partial = None if output is None else output.with_name(output.name + ".partial")
    counts: Counter[str] = Counter()
    try:
        with opened_for_writing(
            partial, compressed=output is not None and output.name.endswith(".gz")
        ) as out:
            progress = ExportProgressBar()
            exporter = Exporter(repository, out, progress, counts)
            try:
                progress.start(exporter.count_sessions(selection))
                out.write(_header_line(args, tenant, since))
                missing = exporter.export(selection)
            finally:
                progress.close()
        if partial is not None and output is not None:
            os.replace(partial, output)
    except GraphQLSessionError as error:
        print(f"session-graphql: export stopped: {explain(error, args.url)}", file=sys.stderr)
        return EXIT_NOT_RUN
    except OSError as error:
        print(f"session-graphql: cannot write {output}: {error.strerror or error}", file=sys.stderr)
        return EXIT_NOT_RUN
    finally:
        repository.close()
        if partial is not None and partial.exists():
            partial.unlink()
    shown = {"session": "sessions", "agent": "agents", "message": "messages", "multiAgent": "multi-agents"}
    summary = ", ".join(
        f"{name} {counts[kind]}" for kind, name in {**shown, "storageObject": "storage objects"}.items()
    )
    print(f"session-graphql: exported to {output or 'standard output'}: {summary}", file=sys.stderr)
    for session_id in missing:
        print(f"session-graphql: session {session_id!r} not found; not exported", file=sys.stderr)
    return EXIT_SKIPPED if missing else 0


def _own_tenant(url: str, token: str | None) -> str | None:
    """The tenant to export when none is named: a key bound to one gets its own (None: no header);
    one bound to none would list every tenant's sessions while looking them up in ``default``,
    so it exports ``default``, where such a key writes."""
    probe = GraphQLSessionRepository(url, token=token, headers={"X-Tenant": DEFAULT_TENANT}, retries=0)
    try:
        probe.read_session(PROBE_SESSION_ID)
    except GraphQLSessionError as error:
        if error.code == "FORBIDDEN":  # bound to another tenant, which it acts in without a header
            return None
        raise Mistake(explain(error, url)) from None
    finally:
        probe.close()
    return DEFAULT_TENANT


def _header_line(args: argparse.Namespace, tenant: str | None, since: str | None) -> bytes:
    return encode(
        header(
            exportedAt=datetime.now(UTC).isoformat(),
            source=args.url,
            tenant=tenant,
            since=since,
            sessions=args.session or None,
        )
    )


def _since(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Mistake(f"--since must be an ISO 8601 time, e.g. 2026-01-31T00:00:00Z, not {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


class ExportProgressBar:
    """Sessions written, on stderr when it is a terminal; nothing otherwise (logs, pipes)."""

    def __init__(self) -> None:
        self.messages = 0
        self.bar = tqdm(
            unit="session",
            desc="exporting",
            file=sys.stderr,
            disable=not sys.stderr.isatty(),
            dynamic_ncols=True,
        )

    def start(self, sessions: int) -> None:
        self.bar.total = sessions
        self.bar.refresh()

    def session_done(self, messages: int) -> None:
        self.messages += messages
        self.bar.set_postfix_str(f"{self.messages:,} messages", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
