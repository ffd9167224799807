"""Who may subscribe, and what they see: credentials in connection_init or the handshake, roles as
for queries, tenants kept apart, revoked keys closed, origins, and the limits on subscriptions."""

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from graphql_api.settings import LiveSettings, Settings
from tests.api_calls import APPEND_MESSAGES, CREATE_AGENT, CREATE_SESSION, agent_input, data_of, message_input
from tests.live_client import MESSAGE_ADDED, PROTOCOL, connected, ws_url
from tests.secured import Secured, secured_server


@pytest.fixture(scope="module")
def secured(database_url: str) -> Iterator[Secured]:
    settings = Settings(key_refresh_seconds=0.3, live=LiveSettings(per_key=3))
    with secured_server(database_url, settings) as running:
        yield running


@pytest.fixture(scope="module")
def keys(secured: Secured) -> dict[str, str]:
    made = {
        f"{tenant}-{role}": secured.key(role, tenant=tenant)
        for tenant in ("acme", "globex")
        for role in ("reader", "writer")
    }
    made["admin"] = secured.key("admin")
    return made


def bearer(key: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **more}


def write(secured: Secured, key: str, session_id: str, ids: range, *, new: bool = False) -> None:
    if new:
        assert "errors" not in secured.graphql(
            CREATE_SESSION, {"session": {"sessionId": session_id}}, key=key
        )
        assert "errors" not in secured.graphql(
            CREATE_AGENT, {"sessionId": session_id, "agent": agent_input("agent")}, key=key
        )
    body = secured.graphql(
        APPEND_MESSAGES,
        {"sessionId": session_id, "agentId": "agent", "messages": [message_input(i) for i in ids]},
        key=key,
    )
    data_of(body)


async def closed_with(
    base_url: str, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, str]:
    async with connected(base_url, payload, headers, acknowledged=False) as socket:
        with pytest.raises(ConnectionClosed) as closed:
            await socket.receive(5)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_a_handshake_without_valid_credentials_is_refused(
    secured: Secured, keys: dict[str, str]
) -> None:
    base = secured.server.base_url
    code, reason = await closed_with(base, {})
    assert code == 4401 and "Credentials needed" in reason
    code, reason = await closed_with(base, {"Authorization": "Bearer sk_not_a_key"})
    assert code == 4401
    # A key bound to one tenant acts in no other.
    code, reason = await closed_with(base, bearer(keys["acme-reader"], **{"X-Tenant": "globex"}))
    assert code == 4403 and "acme" in reason


async def test_a_reader_subscribes_with_credentials_in_connection_init_or_the_handshake(
    secured: Secured, keys: dict[str, str]
) -> None:
    base = secured.server.base_url
    await asyncio.to_thread(write, secured, keys["acme-writer"], "reader-sees", range(0, 2), new=True)
    async with connected(base, bearer(keys["acme-reader"])) as socket:
        await socket.messages_added("reader-sees", "agent", after=-1)
        assert await socket.next_ids(2) == [0, 1]
    async with connected(base, headers=bearer(keys["acme-reader"])) as socket:
        await socket.messages_added("reader-sees", "agent", after=0)
        assert await socket.next_ids(1) == [1]


async def test_subscribers_never_see_another_tenants_messages_even_for_the_same_session_id(
    secured: Secured, keys: dict[str, str]
) -> None:
    base = secured.server.base_url
    await asyncio.to_thread(write, secured, keys["acme-writer"], "shared-id", range(0, 1), new=True)
    await asyncio.to_thread(write, secured, keys["globex-writer"], "shared-id", range(0, 1), new=True)
    async with (
        connected(base, bearer(keys["acme-reader"])) as acme,
        connected(base, bearer(keys["globex-reader"])) as globex,
    ):
        await acme.subscribe(MESSAGE_ADDED, {"s": "shared-id", "a": "agent", "after": 0})
        await globex.subscribe(MESSAGE_ADDED, {"s": "shared-id", "a": "agent", "after": 0})
        await asyncio.sleep(0.3)
        await asyncio.to_thread(write, secured, keys["globex-writer"], "shared-id", range(1, 3))
        assert await globex.next_ids(2) == [1, 2]
        await acme.nothing_more(0.5)
        await asyncio.to_thread(write, secured, keys["acme-writer"], "shared-id", range(1, 2))
        assert await acme.next_ids(1) == [1]
        await globex.nothing_more(0.5)


async def test_a_revoked_keys_subscriptions_close_within_seconds(
    secured: Secured, keys: dict[str, str]
) -> None:
    short_lived = await asyncio.to_thread(secured.key, "reader", "acme", "live-short-lived")
    async with connected(secured.server.base_url, bearer(short_lived)) as socket:
        await socket.messages_added("reader-sees", "agent")
        revoke = 'mutation { revokeApiKey(label: "live-short-lived") { revokedAt } }'
        started = time.monotonic()
        data_of(await asyncio.to_thread(secured.graphql, revoke, key=keys["admin"]))
        with pytest.raises(ConnectionClosed) as closed:
            await socket.receive(10)
        assert time.monotonic() - started < 5
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_cross_origin_handshakes_are_refused_and_same_origin_ones_pass(
    secured: Secured, keys: dict[str, str]
) -> None:
    base = secured.server.base_url
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(ws_url(base), subprotocols=[PROTOCOL], origin="http://evil.example"):  # type: ignore[list-item,arg-type]
            pass
    assert refused.value.response.status_code == 403
    async with connected(base, bearer(keys["acme-reader"]), origin=base) as socket:
        await socket.messages_added("reader-sees", "agent", after=0)
        assert await socket.next_ids(1) == [1]


async def test_subscriptions_per_key_are_limited_and_errors_carry_codes(
    secured: Secured, keys: dict[str, str]
) -> None:
    async with connected(secured.server.base_url, bearer(keys["globex-reader"])) as socket:
        bad = await socket.subscribe(MESSAGE_ADDED, {"s": "", "a": "agent"})
        refused = await socket.receive()
        assert refused["id"] == bad and refused["type"] == "next"
        assert refused["payload"]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        for _ in range(3):
            await socket.messages_added("shared-id", "agent")
        await asyncio.sleep(0.3)
        over = await socket.messages_added("shared-id", "agent")
        message = await socket.receive()
        while message.get("id") != over:
            message = await socket.receive()
        assert message["payload"]["errors"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"


async def test_the_legacy_graphql_ws_protocol_works_too(secured: Secured, keys: dict[str, str]) -> None:
    base = secured.server.base_url
    async with websockets.connect(ws_url(base), subprotocols=["graphql-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": bearer(keys["acme-reader"])}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        variables = {"s": "reader-sees", "a": "agent", "after": -1}
        await ws.send(
            json.dumps(
                {"id": "1", "type": "start", "payload": {"query": MESSAGE_ADDED, "variables": variables}}
            )
        )
        ids = []
        while len(ids) < 2:
            message = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if message["type"] == "data":
                ids.append(message["payload"]["data"]["messageAdded"]["messageId"])
        assert ids == [0, 1]
