"""The export file: JSON Lines, a versioned header first, one record per line, an end line last.

::

    {"kind": "header", "format": "session-graphql-export", "version": 1, ...}
    {"kind": "session", "sessionId": ..., "labels": ..., "title": ..., "createdAt": ..., ...}
    {"kind": "agent", "sessionId": ..., "agentId": ..., "state": ..., ...}
    {"kind": "message", "sessionId": ..., "agentId": ..., "messageId": ..., "message": ..., ...}
    {"kind": "multiAgent", "sessionId": ..., "multiAgentId": ..., "state": ..., ...}
    {"kind": "storageObject", "key": ..., "data": <base64>}
    {"kind": "end", "records": {"session": 3, ...}}

A session's records follow its own line. Values are the API's own: messages' JSON with bytes in
Strands' base64 envelopes, times as the server writes them (UTC, microseconds). Lines are written
with orjson, and with the standard library when orjson cannot (integers past 64 bits, lone
surrogates), and always read with the standard library, which keeps every integer exact (orjson
reads big ones as floats). A file whose name ends in ``.gz`` is gzip.
"""

import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, cast

import orjson

FORMAT = "session-graphql-export"
VERSION = 1
HEADER = "header"
END = "end"
SESSION = "session"
AGENT = "agent"
MESSAGE = "message"
MULTI_AGENT = "multiAgent"
STORAGE_OBJECT = "storageObject"
KINDS = (SESSION, AGENT, MESSAGE, MULTI_AGENT, STORAGE_OBJECT)

Record = dict[str, Any]


class ExportFileError(Exception):
    """A file that is not an export this version reads; the message says why in one line."""


def encode(record: Record) -> bytes:
    """``record`` as one line, newline included."""
    try:
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        # ASCII escapes keep lone surrogates writable; integers stay as long as they are.
        return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes, number: int) -> Record:
    """The record on line ``number`` (from 1)."""
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError) as error:
        raise ExportFileError(f"line {number} is not JSON ({error})") from None
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        raise ExportFileError(f"line {number} is not an export record (no kind)")
    return record


def header(**details: Any) -> Record:
    return {"kind": HEADER, "format": FORMAT, "version": VERSION, **details}


def check_header(record: Record) -> None:
    if record.get("kind") != HEADER or record.get("format") != FORMAT:
        raise ExportFileError(f"not a session-graphql export (its first line is no {FORMAT} header)")
    if record.get("version") != VERSION:
        raise ExportFileError(
            f"export format version {record.get('version')!r}; this session-graphql reads version {VERSION}"
        )


@contextmanager
def opened_for_writing(path: Path | None, compressed: bool = False) -> Iterator[IO[bytes]]:
    """``path`` (gzip when ``compressed``), or standard output when None."""
    if path is None:
        import sys

        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    raw = path.open("wb")
    try:
        if compressed:
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as packed:
                yield cast(IO[bytes], packed)
        else:
            yield raw
    finally:
        raw.close()


@contextmanager
def opened_for_reading(path: Path) -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """The file's lines, and the file underneath whose position says how far reading has come."""
    raw = path.open("rb")
    try:
        if path.name.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw, mode="rb") as packed:
                yield cast(IO[bytes], packed), raw
        else:
            yield raw, raw
    finally:
        raw.close()
