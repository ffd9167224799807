"""GraphQL documents, calls that set up sessions, agents and messages, and assertions,
shared by the API behaviour tests (``test_api_*.py``).

Everything goes through the real HTTP server; the SQL helper reads the tables over its own
connection, to check what the API cannot show (orphans, the role column).
"""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from graphql_api.errors import ErrorCode

GraphQLCall = Callable[..., dict[str, Any]]
NewId = Callable[[str], str]

# The codes errors.py documents; a response carrying any other code is a bug.
DOCUMENTED_CODES = frozenset(code.value for code in ErrorCode)

SESSION_FIELDS = "sessionId sessionType createdAt updatedAt"
AGENT_FIELDS = "sessionId agentId state conversationManagerState internalState createdAt updatedAt"
MESSAGE_FIELDS = "sessionId agentId messageId role message redactMessage createdAt updatedAt"
MULTI_AGENT_FIELDS = "sessionId multiAgentId state createdAt updatedAt"

CREATE_SESSION = f"""
mutation($session: SessionInput!) {{ createSession(session: $session) {{ {SESSION_FIELDS} }} }}
"""
DELETE_SESSION = "mutation($sessionId: String!) { deleteSession(sessionId: $sessionId) }"
GET_SESSION = f"query($sessionId: String!) {{ session(sessionId: $sessionId) {{ {SESSION_FIELDS} }} }}"

CREATE_AGENT = f"""
mutation($sessionId: String!, $agent: AgentInput!) {{
  createAgent(sessionId: $sessionId, agent: $agent) {{ {AGENT_FIELDS} }}
}}
"""
UPDATE_AGENT = f"""
mutation($sessionId: String!, $agent: AgentInput!) {{
  updateAgent(sessionId: $sessionId, agent: $agent) {{ {AGENT_FIELDS} }}
}}
"""
DELETE_AGENT = """
mutation($sessionId: String!, $agentId: String!) { deleteAgent(sessionId: $sessionId, agentId: $agentId) }
"""
GET_AGENT = f"""
query($sessionId: String!, $agentId: String!) {{
  agent(sessionId: $sessionId, agentId: $agentId) {{ {AGENT_FIELDS} }}
}}
"""

CREATE_MESSAGE = f"""
mutation($sessionId: String!, $agentId: String!, $message: MessageInput!) {{
  createMessage(sessionId: $sessionId, agentId: $agentId, message: $message) {{ {MESSAGE_FIELDS} }}
}}
"""
APPEND_MESSAGES = f"""
mutation($sessionId: String!, $agentId: String!, $messages: [MessageInput!]!) {{
  appendMessages(sessionId: $sessionId, agentId: $agentId, messages: $messages) {{ {MESSAGE_FIELDS} }}
}}
"""
UPDATE_MESSAGE = f"""
mutation($sessionId: String!, $agentId: String!, $message: MessageInput!) {{
  updateMessage(sessionId: $sessionId, agentId: $agentId, message: $message) {{ {MESSAGE_FIELDS} }}
}}
"""
DELETE_MESSAGE = """
mutation($sessionId: String!, $agentId: String!, $messageId: Int!) {
  deleteMessage(sessionId: $sessionId, agentId: $agentId, messageId: $messageId)
}
"""
GET_MESSAGE = f"""
query($sessionId: String!, $agentId: String!, $messageId: Int!) {{
  message(sessionId: $sessionId, agentId: $agentId, messageId: $messageId) {{ {MESSAGE_FIELDS} }}
}}
"""

CREATE_MULTI_AGENT = f"""
mutation($sessionId: String!, $multiAgent: MultiAgentInput!) {{
  createMultiAgent(sessionId: $sessionId, multiAgent: $multiAgent) {{ {MULTI_AGENT_FIELDS} }}
}}
"""
UPDATE_MULTI_AGENT = f"""
mutation($sessionId: String!, $multiAgent: MultiAgentInput!) {{
  updateMultiAgent(sessionId: $sessionId, multiAgent: $multiAgent) {{ {MULTI_AGENT_FIELDS} }}
}}
"""
DELETE_MULTI_AGENT = """
mutation($sessionId: String!, $multiAgentId: String!) {
  deleteMultiAgent(sessionId: $sessionId, multiAgentId: $multiAgentId)
}
"""
GET_MULTI_AGENT = f"""
query($sessionId: String!, $multiAgentId: String!) {{
  multiAgent(sessionId: $sessionId, multiAgentId: $multiAgentId) {{ {MULTI_AGENT_FIELDS} }}
}}
"""

MESSAGE_IDS = """
query($sessionId: String!, $agentId: String!) {
  agent(sessionId: $sessionId, agentId: $agentId) { messageCount messages { messageId } }
}
"""


def post_lenient_json(http: httpx.Client, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """POSTs what a lenient JSON encoder sends: NaN and Infinity literals, lone surrogates as escapes.

    (httpx's own encoder refuses both, so the ``graphql`` fixture cannot send them.)
    """
    content = json.dumps({"query": query, "variables": variables}, allow_nan=True, ensure_ascii=True)
    response = http.post("/graphql", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def data_of(body: dict[str, Any]) -> dict[str, Any]:
    """The response's data, after checking it has no errors."""
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


def assert_error(body: dict[str, Any], code: str, field: str | None = None) -> dict[str, Any]:
    """Checks the response failed with ``code`` (naming ``field`` when given); returns the error."""
    errors: list[dict[str, Any]] = body.get("errors") or []
    assert errors, f"expected {code}, got {body}"
    for each in errors:
        assert each.get("extensions", {}).get("code") in DOCUMENTED_CODES, each
    error = errors[0]
    assert error["extensions"]["code"] == code, errors
    if field is not None:
        assert error["extensions"].get("field") == field, error
        assert field in error["message"], error
    return error


def same_json(left: Any, right: Any) -> bool:
    """Equal as JSON, types included: ``1``, ``1.0`` and ``true`` all differ."""
    return json.dumps(left, sort_keys=True) == json.dumps(right, sort_keys=True)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def future_time(offset: timedelta = timedelta(0)) -> datetime:
    """An instant about 900 years ahead and later on each call, so it sorts before every other session."""
    now = datetime.now(UTC)
    return now.replace(year=now.year + 900) + offset


def user_message(content: str, role: str = "user") -> dict[str, Any]:
    """A Strands message with one text block."""
    return {"role": role, "content": [{"text": content}]}


def create_session(graphql: GraphQLCall, session_id: str, **fields: Any) -> dict[str, Any]:
    session: dict[str, Any] = data_of(
        graphql(CREATE_SESSION, {"session": {"sessionId": session_id, **fields}})
    )["createSession"]
    return session


def agent_input(agent_id: str, **fields: Any) -> dict[str, Any]:
    return {"agentId": agent_id, "state": {}, "conversationManagerState": {}, **fields}


def create_agent(graphql: GraphQLCall, session_id: str, agent_id: str, **fields: Any) -> dict[str, Any]:
    body = graphql(CREATE_AGENT, {"sessionId": session_id, "agent": agent_input(agent_id, **fields)})
    agent: dict[str, Any] = data_of(body)["createAgent"]
    return agent


def new_agent(graphql: GraphQLCall, new_id: NewId) -> tuple[str, str]:
    """A fresh session with one agent; returns their ids."""
    session_id, agent_id = new_id("session"), new_id("agent")
    create_session(graphql, session_id)
    create_agent(graphql, session_id, agent_id)
    return session_id, agent_id


def message_input(message_id: int, **fields: Any) -> dict[str, Any]:
    return {"messageId": message_id, "message": user_message(f"message {message_id}"), **fields}


def create_message(
    graphql: GraphQLCall, session_id: str, agent_id: str, message_id: int, **fields: Any
) -> dict[str, Any]:
    variables = {"sessionId": session_id, "agentId": agent_id, "message": message_input(message_id, **fields)}
    message: dict[str, Any] = data_of(graphql(CREATE_MESSAGE, variables))["createMessage"]
    return message


def append_messages(
    graphql: GraphQLCall, session_id: str, agent_id: str, messages: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    variables = {"sessionId": session_id, "agentId": agent_id, "messages": messages}
    appended: list[dict[str, Any]] = data_of(graphql(APPEND_MESSAGES, variables))["appendMessages"]
    return appended


def stored_message_ids(graphql: GraphQLCall, session_id: str, agent_id: str) -> list[int]:
    """The agent's message ids in order, after checking messageCount agrees."""
    agent = data_of(graphql(MESSAGE_IDS, {"sessionId": session_id, "agentId": agent_id}))["agent"]
    ids = [message["messageId"] for message in agent["messages"]]
    assert agent["messageCount"] == len(ids)
    return ids


def create_multi_agent(
    graphql: GraphQLCall, session_id: str, multi_agent_id: str, **fields: Any
) -> dict[str, Any]:
    variables = {
        "sessionId": session_id,
        "multiAgent": {"multiAgentId": multi_agent_id, "state": {}, **fields},
    }
    multi_agent: dict[str, Any] = data_of(graphql(CREATE_MULTI_AGENT, variables))["createMultiAgent"]
    return multi_agent


async def table_rows(database_url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    """Rows of a SQL query, read over a connection of its own (not the server's pool)."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text(sql), params)
            return [dict(row) for row in result.mappings()]
    finally:
        await engine.dispose()


async def rows_of_session(database_url: str, session_id: str) -> dict[str, int]:
    """How many rows each table holds for one session id."""
    counts = {}
    for table in ("sessions", "session_agents", "session_messages", "session_multi_agents"):
        rows = await table_rows(
            database_url, f"SELECT count(*) AS n FROM {table} WHERE session_id = :sid", sid=session_id
        )
        counts[table] = rows[0]["n"]
    return counts
