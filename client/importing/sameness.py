"""When what the server holds is what a file holds: the import's comparisons."""

import json
from datetime import datetime
from typing import Any

from strands.types.session import Session, SessionAgent, SessionMessage, SessionType, encode_bytes_values


def canonical(value: Any) -> str:
    """JSON text that is equal for equal values, whatever their keys' order; bytes as Strands stores them."""
    return json.dumps(encode_bytes_values(value), sort_keys=True, ensure_ascii=False)


def same_content(stored: SessionMessage, local: SessionMessage) -> bool:
    """The server's rule for a message sent again: same message and redaction, timestamps aside."""
    return canonical(stored.message) == canonical(local.message) and canonical(
        stored.redact_message
    ) == canonical(local.redact_message)


def same_states(stored: SessionAgent, local: SessionAgent) -> bool:
    return all(
        canonical(getattr(stored, name)) == canonical(getattr(local, name))
        for name in ("state", "conversation_manager_state", "_internal_state")
    )


def same_session(stored: Session, local: Session) -> bool:
    """Whether the stored session is this one: a session of its own with the same id was made at
    another time (the store keeps the creation time it is sent, in UTC)."""
    return _same_time(stored.created_at, local.created_at) and _type_name(stored) == _type_name(local)


def _same_time(left: str, right: str) -> bool:
    try:
        return datetime.fromisoformat(left) == datetime.fromisoformat(right)
    except (TypeError, ValueError):
        return left == right


def _type_name(session: Session) -> str:
    # Session.from_dict leaves the file's "AGENT" a plain string; the client makes it a SessionType.
    kind = session.session_type
    return kind.value if isinstance(kind, SessionType) else str(kind)
