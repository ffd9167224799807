"""``session-graphql import``: sessions saved by Strands' own stores, into a running server.

It talks to the server only through its API (``client.GraphQLSessionRepository``), so it works
against a remote server and every credential, tenant, limit and validation rule applies.
"""

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from tqdm import tqdm

from client import GraphQLSessionError, GraphQLSessionRepository, GraphQLStorage
from client.errors import TRANSPORT_FAILED
from client.exporting.records import ExportFileError, Record, check_header, decode, opened_for_reading
from client.importing import ImportPlan, ImportReport, ImportStopped, ImportTarget, plan_import, run_import
from client.importing.export_file import FileImport
from client.importing.target import one_line

TOKEN_VARIABLE = "SESSION_GRAPHQL_TOKEN"  # also named in cli.py's help, which must not import this module
EXIT_SKIPPED = 1
"""Something was skipped for an error; everything else was imported."""
EXIT_NOT_RUN = 2
"""A mistake in the command (or a server that cannot be used) kept the import from running or finishing."""
RETRIES = 8
"""Resends after a transport failure (about 10 s of backoff): an import outlasts a server blip."""
PROBE_SESSION_ID = "session-graphql-import-check"


class Mistake(Exception):
    """A mistake in the command line or its surroundings, told as one line."""


def run(args: argparse.Namespace) -> int:
    """The command; returns its exit code: 0 when all was imported or there already, 1 when
    something was skipped, 2 when it could not run or had to stop (one line on stderr says why)."""
    if args.from_file is not None:
        return import_file(args)
    try:
        plan = _plan(args.from_dir)
        token = args.token or os.environ.get(TOKEN_VARIABLE) or None
        repository = connect(args.url, token, args.tenant)
    except Mistake as mistake:
        print(f"session-graphql: {mistake}", file=sys.stderr)
        return EXIT_NOT_RUN
    into = args.url if args.tenant is None else f"{args.url} (tenant {args.tenant})"
    report = ImportReport(dry_run=args.dry_run)
    progress = ProgressBar(plan)
    try:
        headers = None if args.tenant is None else {"X-Tenant": args.tenant}
        storage = GraphQLStorage(args.url, token=token, headers=headers, retries=RETRIES)
        run_import(plan, ImportTarget(repository, dry_run=args.dry_run, storage=storage), report, progress)
    except ImportStopped as stopped:
        progress.close()
        if report.has_outcomes:
            _print_report(plan, into, report)
        print(
            f"session-graphql: import stopped: {explain(stopped.error, args.url)}; what was stored stays, "
            "and running it again goes on from there",
            file=sys.stderr,
        )
        return EXIT_NOT_RUN
    except KeyboardInterrupt:
        progress.close()
        _print_report(plan, into, report)
        print("session-graphql: import interrupted; running it again goes on from there", file=sys.stderr)
        raise
    finally:
        repository.close()
    progress.close()
    _print_report(plan, into, report)
    return EXIT_SKIPPED if report.failed else 0


def import_file(args: argparse.Namespace) -> int:
    """``import --from-file``: an export file (``session-graphql export``) into the server."""
    path: Path = args.from_file
    into = args.url if args.tenant is None else f"{args.url} (tenant {args.tenant})"
    report = ImportReport()
    try:
        if args.dry_run:
            raise Mistake("--dry-run works with --from-dir only")
        if not path.is_file():
            raise Mistake(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
        with opened_for_reading(path) as (lines, underneath):
            records = _records(lines)
            first = next(records, None)
            if first is None:
                raise Mistake(f"{path} is empty: not a session-graphql export")
            token = args.token or os.environ.get(TOKEN_VARIABLE) or None
            repository = connect(args.url, token, args.tenant)
            progress = FileProgressBar(path.stat().st_size, underneath)
            try:
                FileImport(repository, report, progress).run(records)
            finally:
                progress.close()
                repository.close()
    except (Mistake, ExportFileError) as mistake:
        if report.has_outcomes:
            _print_file_report(path, into, report)
        print(
            f"session-graphql: {path}: {mistake}"
            if isinstance(mistake, ExportFileError)
            else f"session-graphql: {mistake}",
            file=sys.stderr,
        )
        return EXIT_NOT_RUN
    except OSError as error:
        print(f"session-graphql: cannot read {path}: {error.strerror or error}", file=sys.stderr)
        return EXIT_NOT_RUN
    except ImportStopped as stopped:
        _print_file_report(path, into, report)
        print(
            f"session-graphql: import stopped: {explain(stopped.error, args.url)}; what was stored stays, "
            "and running it again goes on from there",
            file=sys.stderr,
        )
        return EXIT_NOT_RUN
    _print_file_report(path, into, report)
    return EXIT_SKIPPED if report.failed else 0


def _records(lines: IO[bytes]) -> Iterator[tuple[Record, int, int]]:
    """The file's records, its header first (checked)."""
    numbered = enumerate(lines, start=1)
    while True:
        try:
            number, line = next(numbered)
        except StopIteration:
            return
        except EOFError:
            raise ExportFileError("the gzip stream ends early (cut short?)") from None
        if number == 1:
            try:
                record = decode(line, number)
            except ExportFileError:
                raise ExportFileError("not a session-graphql export (its first line is not JSON)") from None
            check_header(record)
        elif not line.strip():
            continue
        else:
            record = decode(line, number)
        yield record, number, len(line)


def _print_file_report(path: Path, into: str, report: ImportReport) -> None:
    print(f"session-graphql: import from {path} into {into}")
    print("\n".join(report.lines()), flush=True)


class FileProgressBar:
    """How far into the file the import has come, on stderr when it is a terminal."""

    def __init__(self, size: int, underneath: IO[bytes]) -> None:
        self.underneath = underneath
        self.messages = 0
        self.bar = tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            desc="importing",
            file=sys.stderr,
            disable=not sys.stderr.isatty(),
            dynamic_ncols=True,
        )

    def advance(self, messages: int) -> None:
        self.messages += messages
        if self.messages % 1000 == 0:
            self._moved()

    def session_done(self) -> None:
        self._moved()

    def _moved(self) -> None:
        if not self.bar.disable:
            self.bar.update(self.underneath.tell() - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _plan(directory: Path) -> ImportPlan:
    if not directory.exists():
        raise Mistake(f"{directory} does not exist")
    if not directory.is_dir():
        raise Mistake(f"{directory} is not a directory")
    try:
        plan = plan_import(directory)
    except OSError as error:
        raise Mistake(f"cannot read {directory}: {error.strerror or error}") from None
    if plan.is_empty:
        raise Mistake(
            f"{directory} holds no Strands sessions: expected FileSessionManager's session_<id>/ "
            "directories (or one of them), or a LocalFileStorage directory holding session/<id>/scopes/"
        )
    return plan


def connect(url: str, token: str | None, tenant: str | None) -> GraphQLSessionRepository:
    """A repository for ``url`` that has answered one read, so the URL and credentials work."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Mistake(
            f"--url must be an http:// or https:// address, e.g. http://localhost:8000/graphql, not {url!r}"
        )
    headers = None if tenant is None else {"X-Tenant": tenant}
    try:
        # Not resent: a wrong address is reported at once, not after the import's patient retries.
        probe = GraphQLSessionRepository(url, token=token, headers=headers, retries=0)
    except (ValueError, TypeError) as error:
        raise Mistake(f"unusable token: {error}") from None
    try:
        probe.read_session(PROBE_SESSION_ID)
    except GraphQLSessionError as error:
        raise Mistake(explain(error, url, token_given=token is not None)) from None
    finally:
        probe.close()
    return GraphQLSessionRepository(url, token=token, headers=headers, retries=RETRIES)


def explain(error: GraphQLSessionError, url: str, token_given: bool = True) -> str:
    if error.code == TRANSPORT_FAILED:
        return one_line(error)
    if error.code == "UNAUTHENTICATED":
        if not token_given:
            return f"{url} needs credentials: pass --token or set {TOKEN_VARIABLE}"
        return f"{url} refused the token (UNAUTHENTICATED)"
    return f"{url} refused the request ({error.code}): {one_line(error)}"


def _print_report(plan: ImportPlan, into: str, report: ImportReport) -> None:
    print(f"session-graphql: import from {plan.directory} into {into}")
    print("\n".join(report.lines()), flush=True)


class ProgressBar:
    """Messages dealt with, on stderr when it is a terminal; nothing otherwise (logs, pipes)."""

    def __init__(self, plan: ImportPlan) -> None:
        self.sessions = plan.session_count
        self.done = 0
        self.bar = tqdm(
            total=plan.message_count,
            unit="msg",
            desc="importing",
            file=sys.stderr,
            disable=not sys.stderr.isatty(),
            dynamic_ncols=True,
        )

    def advance(self, messages: int) -> None:
        self.bar.update(messages)

    def session_done(self) -> None:
        self.done += 1
        self.bar.set_postfix_str(f"session {self.done}/{self.sessions}", refresh=False)

    def close(self) -> None:
        self.bar.close()
