"""Strands' session objects as GraphQL variables, and GraphQL results as Strands' session objects.

Bytes travel as Strands' own base64 envelopes (``{"__bytes_encoded__": true, "data": ...}``):
``to_dict()`` makes them and ``from_dict()`` turns them back into bytes, as Strands' file and S3
stores do, so the server stores exactly what those stores would write.

Messages are the hot path (an agent writes one per turn and restores thousands at once), so they
are mapped field by field: Strands' ``to_dict()`` copies a message twice and ``from_dict()`` calls
``inspect.signature`` five times per message, which was two thirds of a 10,000-message restore.
"""

import base64
from typing import TYPE_CHECKING, Any

import orjson
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType, encode_bytes_values

if TYPE_CHECKING:
    from strands.multiagent.base import MultiAgentBase


def session_input(session: Session, labels: dict[str, str] | None = None) -> dict[str, Any]:
    variables: dict[str, Any] = {
        "sessionId": session.session_id,
        "sessionType": SessionType(session.session_type).value,
        "createdAt": session.created_at,
        "updatedAt": session.updated_at,
    }
    if labels:
        variables["labels"] = labels
    return variables


def session_from_result(data: dict[str, Any]) -> Session:
    return Session(
        session_id=data["sessionId"],
        session_type=SessionType(data["sessionType"]),
        created_at=data["createdAt"],
        updated_at=data["updatedAt"],
    )


def agent_input(agent: SessionAgent) -> dict[str, Any]:
    stored = agent.to_dict()
    return {
        "agentId": stored["agent_id"],
        "state": stored["state"],
        "conversationManagerState": stored["conversation_manager_state"],
        "internalState": stored["_internal_state"],
        "createdAt": stored["created_at"],
        "updatedAt": stored["updated_at"],
    }


def agent_from_result(data: dict[str, Any]) -> SessionAgent:
    return SessionAgent.from_dict(
        {
            "agent_id": data["agentId"],
            "state": data["state"],
            "conversation_manager_state": data["conversationManagerState"],
            "_internal_state": data["internalState"],
            "created_at": data["createdAt"],
            "updated_at": data["updatedAt"],
        }
    )


STRANDS_DEPTH = 450
"""Levels of nesting Strands' own recursive encoder and decoder reach (about 495, by Python's
recursion limit): a message deeper than that would break the agent at its next save, so reading it
raises RecursionError here, as Strands' ``from_dict`` would."""
ENVELOPE_MARKER = b'"__bytes_encoded__"'
"""The key of an envelope as orjson writes it (strings are escaped, so text cannot fake a key)."""


def message_input(message: SessionMessage) -> dict[str, Any]:
    """What ``message.to_dict()`` would send, sharing every part of the message that holds no bytes."""
    redacted = message.redact_message
    return {
        "messageId": message.message_id,
        "message": _with_envelopes(message.message),
        "redactMessage": None if redacted is None else _with_envelopes(redacted),
        "createdAt": message.created_at,
        "updatedAt": message.updated_at,
    }


def message_from_result(data: dict[str, Any]) -> SessionMessage:
    """What ``SessionMessage.from_dict`` would build; ``data`` is a fresh answer, decoded in place."""
    redacted = data["redactMessage"]
    return SessionMessage(
        message=_decoded(data["message"]),
        message_id=data["messageId"],
        redact_message=None if redacted is None else _decoded(redacted),
        created_at=data["createdAt"],
        updated_at=data["updatedAt"],
    )


def _with_envelopes(value: Any, depth: int = 0) -> Any:
    """``encode_bytes_values(value)``, copying only the dicts and lists on the way to some bytes."""
    if depth > STRANDS_DEPTH:
        raise RecursionError(f"nested more than {STRANDS_DEPTH} levels deep, beyond what Strands handles")
    if isinstance(value, bytes):
        return {"__bytes_encoded__": True, "data": base64.b64encode(value).decode()}
    if isinstance(value, dict | list):
        copy: Any = None  # made at the first part that changes
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            encoded = _with_envelopes(item, depth + 1)
            if encoded is not item:
                if copy is None:
                    copy = value.copy()
                copy[key] = encoded
        return value if copy is None else copy
    return value


def _decoded(value: Any) -> Any:
    """``_without_envelopes(value)``, looked for first in orjson's text of it (C, a tenth of the
    time): most messages hold no bytes, and walking every node of each took 30% of a restore."""
    try:
        has_envelopes = ENVELOPE_MARKER in orjson.dumps(value)
    except TypeError:  # orjson refuses the value (an integer past 64 bits): look everywhere
        has_envelopes = True
    return _without_envelopes(value) if has_envelopes else value


def _without_envelopes(value: Any, depth: int = 0) -> Any:
    """``decode_bytes_values(value)``, replacing the envelopes inside ``value`` itself."""
    if depth > STRANDS_DEPTH:
        raise RecursionError(f"nested more than {STRANDS_DEPTH} levels deep, beyond what Strands handles")
    if isinstance(value, dict):
        if value.get("__bytes_encoded__") is True and "data" in value:
            return base64.b64decode(value["data"])
        for key, item in value.items():
            if isinstance(item, dict | list):
                value[key] = _without_envelopes(item, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict | list):
                value[index] = _without_envelopes(item, depth + 1)
    return value


def multi_agent_input(multi_agent: "MultiAgentBase") -> dict[str, Any]:
    """The Graph's or Swarm's ``serialize_state()``, with any raw bytes in it as envelopes.

    Strands already encodes the bytes it knows of (the task); encoding again leaves those envelopes
    as they are and only protects against bytes a custom orchestrator puts in its state.
    """
    return {"multiAgentId": multi_agent.id, "state": encode_bytes_values(multi_agent.serialize_state())}
