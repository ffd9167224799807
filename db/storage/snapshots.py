"""Strands snapshots (``strands.types._snapshot.Snapshot``) as the store reads them.

A snapshot key's bytes are parsed when written and refused when Strands could not load them at
restore; what is read from a snapshot (its time, its messages and the id of the first, the text
search finds it by) comes from here, for the projection into the session tables, for checkpoints
and for the API's ``Snapshot`` type.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from db.conversations.facts import TEXT_LIMIT, message_text
from db.errors import InvalidDataError, JsonTooDeepError

SNAPSHOT_SCHEMA = "1.0"
LAST_MESSAGE_ID = 2**31 - 1
"""Message ids are PostgreSQL integers."""
SNAPSHOT_NESTING = 3
"""Levels above a message in a snapshot: the snapshot, its data, the messages list."""
MAX_DEPTH = 64
"""Nesting of a snapshot's JSON, as of any stored document (the API passes its max_json_depth)."""
INTERNAL_STATE_FIELDS = ("interrupt_state", "model_state", "system_prompt")
"""What of an agent snapshot goes into the agent's ``internal_state`` (Strands' own state)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The parts of a Strands snapshot (``strands.types._snapshot.Snapshot``) the store reads."""

    scope: str
    created_at: datetime
    data: dict[str, Any]

    @property
    def messages(self) -> list[Any]:
        found = self.data.get("messages", [])
        return found if isinstance(found, list) else []


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON can hold; the store refuses it")


def too_deep(value: Any, max_depth: int) -> bool:
    """Whether ``value`` nests lists and objects more than ``max_depth`` deep (without recursing)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def parse_snapshot(data: bytes, key: str, expected_scope: str, max_depth: int = MAX_DEPTH) -> Snapshot:
    """The snapshot a snapshot key holds; ``InvalidDataError`` when the bytes are not one Strands
    would load (it would fail on them at restore, so they are refused when written)."""
    try:
        # json, not orjson: integers beyond 64 bits stay exact, as Strands keeps them.
        value = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        # json.loads recurses once per level and gives up near Python's recursion limit (~1,000
        # levels less the stack below it): far deeper than the deepest snapshot a server may store
        # (max_json_depth is at most 400, plus the snapshot's own levels).
        raise JsonTooDeepError(f"{key}: nests lists and objects more than {max_depth} deep") from None
    except ValueError as error:
        raise InvalidDataError(f"{key}: not a Strands snapshot (not JSON: {error})") from None
    if not isinstance(value, dict) or not isinstance(value.get("data"), dict):
        raise InvalidDataError(f"{key}: not a Strands snapshot (no data object)")
    if too_deep(value, max_depth):
        raise JsonTooDeepError(f"{key}: nests lists and objects more than {max_depth} deep")
    if not isinstance(value["data"].get("messages", []), list):
        raise InvalidDataError(f"{key}: the snapshot's messages are not a list")
    if value.get("schema_version") != SNAPSHOT_SCHEMA or value.get("scope", "agent") != expected_scope:
        raise InvalidDataError(
            f"{key}: not a {expected_scope} snapshot of schema {SNAPSHOT_SCHEMA} "
            f"(scope {value.get('scope')!r}, schema_version {value.get('schema_version')!r})"
        )
    created = value.get("created_at")
    try:
        created_at = datetime.fromisoformat(created) if isinstance(created, str) else None
    except ValueError:
        created_at = None
    if created_at is None:
        raise InvalidDataError(f"{key}: snapshot created_at {created!r} is not an ISO 8601 time")
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    return Snapshot(scope=expected_scope, created_at=created_at, data=value["data"])


def _strings(value: Any) -> Iterator[str]:
    pending = [value]
    while pending:  # without recursing: any JSON orjson reads is searched
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(reversed(item.values()))
        elif isinstance(item, list):
            pending.extend(reversed(item))


def searchable_text(data: bytes, snapshot: Snapshot | None) -> str:
    """What search finds an object by: a snapshot's messages as the agent reads them (the latest
    kept when there is too much), any other JSON's strings, nothing for other bytes."""
    if snapshot is not None:
        found = "\n".join(message_text(message) for message in snapshot.messages)
        return found[-TEXT_LIMIT:].replace("\x00", "")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return ""
    return "\n".join(_strings(value))[:TEXT_LIMIT].replace("\x00", "")


def first_message_id(snapshot: Snapshot) -> int:
    """The id of the snapshot's first message. Strands' conversation managers drop the oldest
    messages and count them (``removed_message_count``), so the snapshot's first message is that
    one of the conversation, as ``RepositorySessionManager`` numbers it."""
    state = snapshot.data.get("conversation_manager_state")
    removed = state.get("removed_message_count") if isinstance(state, dict) else None
    if isinstance(removed, int) and not isinstance(removed, bool) and 0 <= removed <= LAST_MESSAGE_ID:
        return min(removed, LAST_MESSAGE_ID - len(snapshot.messages))
    return 0


def role_of(message: Any) -> str:
    """A snapshot message's role, as its session row stores it ("" for one that names none)."""
    return str(message.get("role", "")) if isinstance(message, dict) else ""
