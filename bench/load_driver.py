"""Requests per second from concurrent HTTP clients, the same driver for every server compared.

Each client is its own ``httpx.AsyncClient`` (its own kept-alive connection) sending the same
request one after another for a fixed time. Answers are checked for HTTP 200 and no ``"errors"``
without being parsed, so the driver spends little of the machine the servers share with it.
"""

import asyncio
import json
import time
from typing import Any

import httpx


async def _warm(clients: list[httpx.AsyncClient], url: str, body: bytes) -> None:
    await asyncio.gather(*(client.post(url, content=body) for client in clients))


async def requests_per_second(
    url: str, request: dict[str, Any], headers: dict[str, str], clients: int, seconds: float
) -> float:
    """How many answers ``clients`` concurrent clients got per second over ``seconds``."""
    body = json.dumps(request).encode()
    sent_headers = {**headers, "Content-Type": "application/json"}
    opened = [httpx.AsyncClient(headers=sent_headers, timeout=60) for _ in range(clients)]
    try:
        await _warm(opened, url, body)
        answered = 0
        start = time.perf_counter()
        deadline = start + seconds

        async def keep_sending(client: httpx.AsyncClient) -> None:
            nonlocal answered
            while time.perf_counter() < deadline:
                response = await client.post(url, content=body)
                if response.status_code != 200 or b'"errors"' in response.content:
                    raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
                answered += 1

        await asyncio.gather(*(keep_sending(client) for client in opened))
        return answered / (time.perf_counter() - start)
    finally:
        await asyncio.gather(*(client.aclose() for client in opened))
