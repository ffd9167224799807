"""Strands' session objects as GraphQL variables, and GraphQL results as Strands' session objects.

Bytes travel as Strands' own base64 envelopes (``{"__bytes_encoded__": true, "data": ...}``):
``to_dict()`` makes them and ``from_dict()`` turns them back into bytes, as Strands' file and S3
stores do, so the server stores exactly what those stores would write.
"""

from typing import TYPE_CHECKING, Any

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


def message_input(message: SessionMessage) -> dict[str, Any]:
    stored = message.to_dict()
    return {
        "messageId": stored["message_id"],
        "message": stored["message"],
        "redactMessage": stored["redact_message"],
        "createdAt": stored["created_at"],
        "updatedAt": stored["updated_at"],
    }


def message_from_result(data: dict[str, Any]) -> SessionMessage:
    return SessionMessage.from_dict(
        {
            "message_id": data["messageId"],
            "message": data["message"],
            "redact_message": data["redactMessage"],
            "created_at": data["createdAt"],
            "updated_at": data["updatedAt"],
        }
    )


def multi_agent_input(multi_agent: "MultiAgentBase") -> dict[str, Any]:
    """The Graph's or Swarm's ``serialize_state()``, with any raw bytes in it as envelopes.

    Strands already encodes the bytes it knows of (the task); encoding again leaves those envelopes
    as they are and only protects against bytes a custom orchestrator puts in its state.
    """
    return {"multiAgentId": multi_agent.id, "state": encode_bytes_values(multi_agent.serialize_state())}
