"""Keys of Strands' ``Storage`` protocol: how they are normalized and what they mean.

Keys are normalized as Strands' own backends normalize them (runs of ``/`` collapsed, outer ``/``
stripped, no ``\\`` and no ``..`` segment), so an agent moving from ``LocalFileStorage`` finds the
same keys. The keys ``SnapshotSessionManager`` writes are understood as well (``SNAPSHOT_KEY``): a
key's meaning says which session it belongs to and, for a snapshot, whose latest snapshot or
immutable checkpoint it is, which decides what else a write or delete of it touches.
"""

import re
import unicodedata
from dataclasses import dataclass

from db.errors import InvalidDataError
from db.models import ID_LENGTH

MAX_KEY_BYTES = 1024
"""As S3: longer keys are refused rather than cut."""
SNAPSHOT_KEY = re.compile(
    r"session/(?P<session>[^/]+)/scopes/(?P<scope>agent|multiAgent)/(?P<scope_id>[^/]+)/snapshots/"
    r"(?:snapshot_latest\.json|immutable_history/snapshot_(?P<snapshot>[\w-]+)\.json)"
)
"""The keys of ``strands.session.snapshot_session_manager`` under its ``session`` namespace."""
SESSION_KEY = re.compile(r"(?:session|context)/(?P<session>[^/]+)/")
"""Keys of one session: Strands' snapshots (``session/``) and its context stash (``context/``)."""
AGENT_LATEST = "agent_latest"
AGENT_CHECKPOINT = "agent_checkpoint"
MULTI_AGENT_LATEST = "multi_agent_latest"
OBJECT = "object"


def normalize_key(key: str) -> str:
    """The key as Strands' path-based backends store it; ``InvalidDataError`` if it cannot be one."""
    _check_characters("key", key)
    normalized = re.sub(r"/+", "/", key).strip("/")
    if not normalized:
        raise InvalidDataError("key must not be empty")
    if ".." in normalized.split("/"):
        raise InvalidDataError(f"key {key!r}: '..' segments are not allowed")
    if len(normalized.encode()) > MAX_KEY_BYTES:
        raise InvalidDataError(f"key is longer than {MAX_KEY_BYTES} bytes")
    return normalized


def normalize_prefix(prefix: str) -> str:
    """As ``normalize_key``, but empty is allowed (everything), a trailing ``/`` is kept, and so is
    a NUL: Strands' backends list nothing for it rather than fail (see ``_starts_no_key`` in
    ``db.storage.objects``)."""
    _check_characters("prefix", prefix.replace("\x00", ""))
    normalized = re.sub(r"/+", "/", prefix).lstrip("/")
    if ".." in normalized.split("/"):
        raise InvalidDataError(f"prefix {prefix!r}: '..' segments are not allowed")
    if len(normalized.encode()) > MAX_KEY_BYTES:
        raise InvalidDataError(f"prefix is longer than {MAX_KEY_BYTES} bytes")
    return normalized


def _check_characters(name: str, value: str) -> None:
    if "\\" in value:
        raise InvalidDataError(f"{name} {value!r}: backslashes are not allowed")
    if "\x00" in value:
        raise InvalidDataError(f"{name} must not contain NUL characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidDataError(f"{name} is not valid Unicode text (a lone surrogate)") from None


@dataclass(frozen=True, slots=True)
class KeyMeaning:
    """What a key is: the session it belongs to ('' for none) and, for a snapshot, whose."""

    session_id: str
    kind: str
    scope_id: str | None = None
    snapshot_id: str | None = None


def meaning_of(key: str) -> KeyMeaning:
    snapshot = SNAPSHOT_KEY.fullmatch(key)
    if snapshot is not None and _fits(snapshot["session"]) and _fits(snapshot["scope_id"]):
        if snapshot["scope"] == "multiAgent":
            if snapshot["snapshot"] is None:
                return KeyMeaning(snapshot["session"], MULTI_AGENT_LATEST, snapshot["scope_id"])
        elif snapshot["snapshot"] is None:
            return KeyMeaning(snapshot["session"], AGENT_LATEST, snapshot["scope_id"])
        else:
            return KeyMeaning(
                snapshot["session"], AGENT_CHECKPOINT, snapshot["scope_id"], snapshot["snapshot"]
            )
    session = SESSION_KEY.match(key)
    if session is not None and _fits(session["session"]):
        return KeyMeaning(session["session"], OBJECT)
    return KeyMeaning("", OBJECT)


def _fits(identifier: str) -> bool:
    """Whether an id in a key is one the API can address (``graphql_api.guards.arguments.check_id``):
    other keys are kept as plain objects, outside any session."""
    return (
        len(identifier) <= ID_LENGTH
        and identifier not in (".", "..")
        and not any(unicodedata.category(c) == "Cc" for c in identifier)
    )


def checkpoint_key(session_id: str, agent_id: str, snapshot_id: str) -> str:
    """The storage key SnapshotSessionManager writes an agent's immutable snapshot under."""
    history = f"session/{session_id}/scopes/agent/{agent_id}/snapshots/immutable_history"
    return f"{history}/snapshot_{snapshot_id}.json"
