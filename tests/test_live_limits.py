"""A subscriber that stops reading: closed as too slow, with a clear reason, while writes and the
other subscribers go on at full speed; and the subscription metrics that show it."""

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api_calls import APPEND_MESSAGES, CREATE_AGENT, CREATE_SESSION, agent_input, user_message
from tests.live_client import MESSAGE_ADDED, StalledClient, connected
from tests.metrics_server import Served, scrape, value

BIG_TEXT = "x" * 300_000
TENANT = {"X-Tenant": "acme"}


@pytest.fixture(scope="module")
def served(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log = Path(tmp_path_factory.mktemp("slow") / "serve.log")
    env = {"SESSION_GRAPHQL_SUBSCRIBER_BUFFER": "5", "SESSION_GRAPHQL_SUBSCRIBER_SLOW_SECONDS": "1"}
    running = Served(database_url, log, env=env)
    yield running
    running.stop()


async def test_a_stalled_subscriber_is_closed_without_delaying_writes(served: Served) -> None:
    base = f"http://127.0.0.1:{served.port}"
    http = httpx.AsyncClient(base_url=base, headers=TENANT, timeout=30)

    async def call(query: str, variables: dict[str, object]) -> None:
        body = (await http.post("/graphql", json={"query": query, "variables": variables})).json()
        assert "errors" not in body, body

    await call(CREATE_SESSION, {"session": {"sessionId": "stalled"}})
    await call(CREATE_AGENT, {"sessionId": "stalled", "agent": agent_input("agent")})
    variables = {"s": "stalled", "a": "agent", "after": -1}
    stalled = StalledClient(base, TENANT)
    await stalled.subscribe(MESSAGE_ADDED, variables)
    async with connected(base, TENANT) as healthy:
        await healthy.subscribe(MESSAGE_ADDED, variables)
        reading = asyncio.create_task(healthy.next_ids(60, 30))
        waits = []
        for start in range(0, 60, 5):
            batch = [
                {"messageId": i, "message": user_message(f"{i} {BIG_TEXT}")} for i in range(start, start + 5)
            ]
            began = time.monotonic()
            await call(APPEND_MESSAGES, {"sessionId": "stalled", "agentId": "agent", "messages": batch})
            waits.append(time.monotonic() - began)
        assert await reading == list(range(60))
        await asyncio.sleep(2)  # past SLOW_SECONDS with a full buffer
        samples = scrape(served.metrics_port)
        assert value(samples, "session_graphql_subscriptions_closed_slow_total") == 1
        assert value(samples, "session_graphql_subscriptions_active") == 1  # the healthy one
    # Writes never waited for the stalled subscriber: each took what a write takes.
    assert max(waits) < 2.0, waits
    # Once it reads again, the stalled client finds what was sent, then the reason it was closed.
    received, code, reason = await stalled.resume()
    assert code == 1013 and "too slow" in reason, (code, reason)
    assert received < 60
    await http.aclose()
    await asyncio.sleep(0.2)
    assert value(scrape(served.metrics_port), "session_graphql_subscriptions_active") == 0
