"""Subscriptions beside messageAdded: messageUpdated (redactions), agentUpdated (state, snapshot-
backed agents included) and sessionActivity (an overview page's new sessions and messages)."""

import asyncio
import base64
import json
from dataclasses import replace
from typing import Any

import httpx

from graphql_api.settings import Limits, Settings
from tests.api_calls import (
    UPDATE_AGENT,
    UPDATE_MESSAGE,
    GraphQLCall,
    NewId,
    agent_input,
    append_messages,
    create_agent,
    create_session,
    message_input,
    new_agent,
    user_message,
)
from tests.conftest import RunningServer
from tests.live_client import Socket, connected

MESSAGE_UPDATED = """
subscription($s: String!, $a: String!) {
  messageUpdated(sessionId: $s, agentId: $a) { messageId redactMessage }
}
"""
AGENT_UPDATED = "subscription($s: String!) { agentUpdated(sessionId: $s) { agentId state messageCount } }"
SESSION_ACTIVITY = """
subscription($f: ConversationFilter) {
  sessionActivity(filter: $f) { kind session { sessionId labels } agentId messages { messageId role } }
}
"""
WRITE_OBJECT = "mutation($k: String!, $d: Base64!) { writeStorageObject(key: $k, data: $d) { size } }"


def server_graphql(server: RunningServer) -> GraphQLCall:
    def call(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = httpx.post(
            server.url, json={"query": query, "variables": variables or {}}
        ).json()
        return body

    return call


async def next_data(socket: Socket, field: str) -> Any:
    message = await socket.receive(5)
    assert message["type"] == "next" and "errors" not in message["payload"], message
    return message["payload"]["data"][field]


async def in_thread(call: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(call, *args, **kwargs)


async def test_a_redaction_reaches_message_updated(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    append_messages(graphql, session_id, agent_id, [message_input(0), message_input(1)])
    async with connected(server.base_url) as socket:
        await socket.subscribe(MESSAGE_UPDATED, {"s": session_id, "a": agent_id})
        await asyncio.sleep(0.3)  # subscribed before the write
        redaction = user_message("[redacted]")
        variables = {
            "sessionId": session_id,
            "agentId": agent_id,
            "message": message_input(1, redactMessage=redaction),
        }
        await in_thread(graphql, UPDATE_MESSAGE, variables)
        updated = await next_data(socket, "messageUpdated")
        assert updated == {"messageId": 1, "redactMessage": redaction}
        await socket.nothing_more()


async def test_agent_state_changes_reach_agent_updated(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("session")
    create_session(graphql, session_id)
    async with connected(server.base_url) as socket:
        await socket.subscribe(AGENT_UPDATED, {"s": session_id})
        await asyncio.sleep(0.3)
        await in_thread(create_agent, graphql, session_id, "a1")
        assert (await next_data(socket, "agentUpdated"))["agentId"] == "a1"
        agent = agent_input("a1", state={"step": 2})
        await in_thread(graphql, UPDATE_AGENT, {"sessionId": session_id, "agent": agent})
        assert await next_data(socket, "agentUpdated") == {
            "agentId": "a1",
            "state": {"step": 2},
            "messageCount": 0,
        }
        await socket.nothing_more()


async def test_a_snapshot_backed_agent_raises_the_same_events(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("snap")
    key = f"session/{session_id}/scopes/agent/snapper/snapshots/snapshot_latest.json"

    def snapshot(count: int) -> str:
        messages = [user_message(f"m{i}", "user" if i % 2 == 0 else "assistant") for i in range(count)]
        body = {
            "schema_version": "1.0",
            "scope": "agent",
            "created_at": "2026-01-01T00:00:00+00:00",
            "data": {"messages": messages, "state": {"n": count}, "conversation_manager_state": {}},
        }
        return base64.b64encode(json.dumps(body).encode()).decode()

    async with connected(server.base_url) as activity, connected(server.base_url) as socket:
        await activity.subscribe(SESSION_ACTIVITY, {"f": {"sessionIdPrefix": session_id}})
        await socket.subscribe(AGENT_UPDATED, {"s": session_id})
        await asyncio.sleep(0.3)
        await in_thread(graphql, WRITE_OBJECT, {"k": key, "d": snapshot(2)})
        created = await next_data(activity, "sessionActivity")
        assert (created["kind"], created["session"]["sessionId"]) == ("SESSION_CREATED", session_id)
        added = await next_data(activity, "sessionActivity")
        assert added["kind"] == "MESSAGES_ADDED" and [m["messageId"] for m in added["messages"]] == [0, 1]
        assert await next_data(socket, "agentUpdated") == {
            "agentId": "snapper",
            "state": {"n": 2},
            "messageCount": 2,
        }
        await socket.messages_added(session_id, "snapper", after=-1)
        assert await socket.next_ids(2) == [0, 1]
        await in_thread(graphql, WRITE_OBJECT, {"k": key, "d": snapshot(3)})
        # Two subscriptions on one socket: their events come in either order.
        events = [await socket.receive(5) for _ in range(2)]
        assert all(event["type"] == "next" and "errors" not in event["payload"] for event in events), events
        by_field = {name: value for event in events for name, value in event["payload"]["data"].items()}
        assert by_field["agentUpdated"]["state"] == {"n": 3}
        assert by_field["messageAdded"]["messageId"] == 2


async def test_session_activity_shows_matching_sessions_and_messages_in_order(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    team = new_id("team")
    async with connected(server.base_url) as socket:
        await socket.subscribe(SESSION_ACTIVITY, {"f": {"labels": {"team": team}, "role": "assistant"}})
        await asyncio.sleep(0.3)
        other = new_id("session")
        await in_thread(create_session, graphql, other)  # not labelled: not shown
        await in_thread(create_agent, graphql, other, "a")
        await in_thread(
            append_messages, graphql, other, "a", [message_input(0, message=user_message("x", "assistant"))]
        )
        mine = new_id("session")
        await in_thread(create_session, graphql, mine, labels={"team": team})
        await in_thread(create_agent, graphql, mine, "a")
        batch = [
            message_input(i, message=user_message(f"m{i}", "user" if i % 2 == 0 else "assistant"))
            for i in range(4)
        ]
        await in_thread(append_messages, graphql, mine, "a", batch[:2])
        await in_thread(append_messages, graphql, mine, "a", batch[2:])
        seen = [await next_data(socket, "sessionActivity") for _ in range(3)]
        assert [(s["kind"], s["session"]["sessionId"]) for s in seen] == [
            ("SESSION_CREATED", mine),
            ("MESSAGES_ADDED", mine),
            ("MESSAGES_ADDED", mine),
        ]
        assert [[m["messageId"] for m in s["messages"]] for s in seen[1:]] == [[1], [3]]
        await socket.nothing_more()


async def test_each_event_is_an_answer_of_its_own_with_fresh_budget_and_fresh_nested_reads(
    database_url: str, new_id: NewId
) -> None:
    # Each message's answer is about 2 KB: ten of them are far past this server's answer budget.
    server = RunningServer(
        Settings(database_url=database_url, limits=replace(Limits(), max_response_bytes=4096))
    )
    await asyncio.to_thread(server.start)
    try:
        graphql = server_graphql(server)
        session_id, agent_id = await in_thread(new_agent, graphql, new_id)
        watch = """
        subscription($s: String!, $a: String!) {
          messageAdded(sessionId: $s, agentId: $a, afterMessageId: -1) {
            messageId message agent { messageCount }
          }
        }
        """
        async with connected(server.base_url) as socket:
            await socket.subscribe(watch, {"s": session_id, "a": agent_id})
            for n in range(10):
                body = message_input(n, message=user_message("x" * 2000))
                await in_thread(append_messages, graphql, session_id, agent_id, [body])
                event = await next_data(socket, "messageAdded")
                assert (event["messageId"], event["agent"]["messageCount"]) == (n, n + 1)
    finally:
        await asyncio.to_thread(server.stop)
