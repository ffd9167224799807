"""Live: what subscriptions cost and how fast they are.

Latency: 200 ``messageAdded`` subscribers (websockets at ``/graphql``, ``SUBSCRIBERS / WRITERS``
on each writer's agent) while 16 writers append one message per call: every ``AGENT_PACE``
seconds (as agents do), then as fast as their calls return. A message's latency is from the
moment its writer has the server's answer (the transaction committed before it) to the moment a
subscriber has it, on this process's clock; negative when the notice outran the answer, counted
as 0. p50 and p99 over every delivery.

Append cost: the message insert's statement with its ``pg_notify`` and the same statement
without it (the reference), executed alternately on one connection while the server listens;
medians per statement.
"""

import asyncio
import json
import re
import statistics
import time
from typing import Any

import httpx
import websockets
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.report import Row, duration, ratio
from bench.run_context import BenchRun
from db.conversations import message_writes

SUBSCRIBERS = 200
WRITERS = 16
LATENCY_TARGET = 0.1
COST_TARGET = 1.10
AGENT_PACE = 0.1
"""Seconds between one writer's messages in the row with a target: an agent writes a message per
model call, not back to back; the flat-out row shows the server saturated."""
SUBSCRIBE = """
subscription($s: String!, $a: String!) {
  messageAdded(sessionId: $s, agentId: $a, afterMessageId: -1) { messageId }
}
"""
APPEND = """
mutation($s: String!, $a: String!, $m: MessageInput!) {
  createMessage(sessionId: $s, agentId: $a, message: $m) { messageId }
}
"""
CREATE_SESSION = "mutation($s: String!) { createSession(session: {sessionId: $s}) { sessionId } }"
CREATE_AGENT = """
mutation($s: String!, $a: String!) {
  createAgent(sessionId: $s, agent: {agentId: $a, state: {}, conversationManagerState: {}}) { agentId }
}
"""
WITHOUT_NOTICE = (
    "SELECT inserted.* FROM inserted, (SELECT count(*) AS n FROM notified) AS sent",
    "SELECT * FROM inserted",
)
NOTIFY_CTE = re.compile(r",\s*-- Delivered at commit.*?HAVING count\(\*\) > 0\s*\)", re.DOTALL)


def _message(n: int) -> dict[str, Any]:
    return {"messageId": n, "message": {"role": "user", "content": [{"text": f"message {n} " + "x" * 900}]}}


async def _subscriber(
    url: str, headers: dict[str, str], agent: tuple[str, str], count: int
) -> list[tuple[int, float]]:
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": headers}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        variables = {"s": agent[0], "a": agent[1]}
        await ws.send(
            json.dumps(
                {"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE, "variables": variables}}
            )
        )
        got: list[tuple[int, float]] = []
        while len(got) < count:
            message = json.loads(await ws.recv())
            if message["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
                continue
            assert message["type"] == "next", message
            got.append((message["payload"]["data"]["messageAdded"]["messageId"], time.perf_counter()))
        return got


async def _writer(
    url: str,
    http: httpx.AsyncClient,
    agent: tuple[str, str],
    count: int,
    answered: dict[tuple[str, int], float],
    pace: float,
) -> None:
    for n in range(count):
        if pace:
            await asyncio.sleep(pace)
        body = (
            await http.post(
                url, json={"query": APPEND, "variables": {"s": agent[0], "a": agent[1], "m": _message(n)}}
            )
        ).json()
        answered[(agent[0], n)] = time.perf_counter()
        assert "errors" not in body, body


async def _latencies(bench: BenchRun, per_writer: int, pace: float) -> tuple[list[float], bool]:
    url = bench.server.url
    headers = dict(bench.server.headers)
    agents = [(f"live-{pace}-{n}", "agent") for n in range(WRITERS)]
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        for session_id, agent_id in agents:
            await http.post(url, json={"query": CREATE_SESSION, "variables": {"s": session_id}})
            await http.post(url, json={"query": CREATE_AGENT, "variables": {"s": session_id, "a": agent_id}})
        ws_url = url.replace("http://", "ws://", 1)
        watching = [
            asyncio.create_task(_subscriber(ws_url, headers, agents[n % WRITERS], per_writer))
            for n in range(SUBSCRIBERS)
        ]
        await asyncio.sleep(2.0)  # every subscriber connected and subscribed
        answered: dict[tuple[str, int], float] = {}
        await asyncio.gather(*(_writer(url, http, agent, per_writer, answered, pace) for agent in agents))
        seen = await asyncio.wait_for(asyncio.gather(*watching), 120)
    complete = True
    latencies: list[float] = []
    for n, got in enumerate(seen):
        session_id = agents[n % WRITERS][0]
        complete = complete and [message_id for message_id, _ in got] == list(range(per_writer))
        latencies += [max(0.0, at - answered[(session_id, message_id)]) for message_id, at in got]
    return latencies, complete


async def _append_cost(bench: BenchRun, calls: int) -> tuple[float, float]:
    # The API's own statement (createMessage's), and the same with its notice cut out.
    with_notify = message_writes._INSERT_ONE
    without = text(NOTIFY_CTE.sub("\n", with_notify.text).replace(*WITHOUT_NOTICE)).bindparams(
        *with_notify._bindparams.values()
    )
    assert "pg_notify" not in without.text and "pg_notify" in with_notify.text
    async with httpx.AsyncClient(headers=bench.server.headers, timeout=60) as http:
        await http.post(bench.server.url, json={"query": CREATE_SESSION, "variables": {"s": "live-cost"}})
        await http.post(
            bench.server.url, json={"query": CREATE_AGENT, "variables": {"s": "live-cost", "a": "a"}}
        )
    engine = create_async_engine(bench.database.url, pool_size=1)
    timings: dict[str, list[float]] = {"on": [], "off": []}
    try:
        async with engine.connect() as conn:
            now = message_writes._now()
            for n in range(calls * 2):
                kind = "on" if n % 2 else "off"
                draft = _message(n)
                params = {
                    "session_id": "live-cost",
                    "tenant": "default",
                    "agent_id": "a",
                    "id": n,
                    "role": "user",
                    "body": json.dumps(draft["message"]),
                    "redaction": None,
                    "created": now,
                    "updated": now,
                    "f": message_writes.facts_json(message_writes.facts_of(draft["message"], None), n),
                }
                start = time.perf_counter()
                await conn.execute(with_notify if kind == "on" else without, params)
                await conn.commit()
                timings[kind].append(time.perf_counter() - start)
    finally:
        await engine.dispose()
    return statistics.median(timings["on"][10:]), statistics.median(timings["off"][10:])


def _latency_rows(latencies: list[float], complete: bool, how: str, target: bool) -> list[Row]:
    p50, p99 = statistics.median(latencies), statistics.quantiles(latencies, n=100)[98]
    case = f"live: commit to subscriber, {SUBSCRIBERS} subscribers, {WRITERS} writers {how}"
    return [
        Row(
            case=f"{case} (p50)",
            figure=duration(p50),
            reference=f"{len(latencies)} deliveries, each once in order: {'yes' if complete else 'NO'}",
            ratio="-",
            target="-",
            met=complete,
        ),
        Row(
            case=f"{case} (p99)",
            figure=duration(p99),
            reference="-",
            ratio="-",
            target=f"< {duration(LATENCY_TARGET)}" if target else "-",
            met=(p99 < LATENCY_TARGET and complete) if target else complete,
        ),
    ]


def run(bench: BenchRun) -> list[Row]:
    per_writer = 25 if bench.sizes.name == "quick" else 100
    rows: list[Row] = []
    for pace, how, target in (
        (AGENT_PACE, f"each every {AGENT_PACE * 1e3:.0f} ms", True),
        (0.0, "flat out", False),
    ):
        bench.log(f"live: {SUBSCRIBERS} subscribers, {WRITERS} writers x {per_writer} messages, {how}")
        latencies, complete = asyncio.run(_latencies(bench, per_writer, pace))
        bench.log(f"live: {len(latencies)} deliveries, each once in order: {complete}")
        rows += _latency_rows(latencies, complete, how, target)
    cost_calls = 300 if bench.sizes.name == "quick" else 1000
    bench.log(f"live: the message insert with and without its notice, {cost_calls} each")
    on, off = asyncio.run(_append_cost(bench, cost_calls))
    rows.append(
        Row(
            case="live: message insert with its notice (median/statement)",
            figure=duration(on),
            reference=f"{duration(off)} without the notice",
            ratio=ratio(on, off),
            target=f"<= {COST_TARGET:.2f}x",
            met=on / off <= COST_TARGET,
        )
    )
    return rows
