"""Per-key rate limits: HTTP 429 with Retry-After, one bucket across replicas, and clients that wait."""

import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from client import GraphQLSessionRepository
from graphql_api.settings import Limits, Settings
from tests.conftest import RunningServer
from tests.secured import Secured, secured_server

RATE, BURST = 10.0, 5
READ = '{ session(sessionId: "nothing") { sessionId } }'


@pytest.fixture(scope="module")
def limited(database_url: str) -> Iterator[Secured]:
    settings = Settings(limits=replace(Limits(), rate_per_second=RATE, rate_burst=BURST))
    with secured_server(database_url, settings) as secured:
        yield secured


def test_a_burst_past_the_limit_is_refused_with_429_retry_after_and_admitted_again_later(
    limited: Secured,
) -> None:
    key = limited.key("reader", tenant="rl")
    statuses = [limited.post(READ, key=key).status_code for _ in range(BURST + 3)]

    refused = limited.post(READ, key=key)

    assert statuses[:BURST] == [200] * BURST
    assert refused.status_code == 429
    (error,) = refused.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    retry_after = error["extensions"]["retryAfter"]
    assert 0 < retry_after <= 1 / RATE + 0.05
    assert int(refused.headers["retry-after"]) >= 1
    time.sleep(retry_after + 0.05)
    assert limited.post(READ, key=key).status_code == 200


def test_each_key_has_its_own_bucket(limited: Secured) -> None:
    busy, quiet = limited.key("reader", tenant="rl"), limited.key("reader", tenant="rl")
    for _ in range(BURST + 2):
        limited.post(READ, key=busy)

    assert limited.post(READ, key=busy).status_code == 429
    assert limited.post(READ, key=quiet).status_code == 200


@pytest.fixture(scope="module")
def slow_refill(database_url: str) -> Iterator[tuple[Secured, Secured]]:
    """Two replicas of one database whose buckets barely refill while a test runs (1 per second)."""
    limits = replace(Limits(), rate_per_second=1, rate_burst=BURST)
    settings = Settings(key_refresh_seconds=0.3, limits=limits)
    with secured_server(database_url, settings) as first:
        second = RunningServer(replace(first.server.settings))
        second.start()
        try:
            yield first, Secured(second, first.database_url)
        finally:
            second.stop()


def test_replicas_share_one_bucket_per_key(slow_refill: tuple[Secured, Secured]) -> None:
    first, second = slow_refill
    key = first.key("reader", tenant="rl")
    replicas = (first, second)
    started = time.monotonic()

    admitted = sum(replicas[i % 2].post(READ, key=key).status_code == 200 for i in range(4 * BURST))

    refilled = int(time.monotonic() - started) + 1  # 1 token a second
    # Leases are a quarter second's worth, at least one token: at most one spare per replica.
    assert BURST <= admitted <= BURST + 2 + refilled
    assert admitted < 2 * BURST  # two replicas with a bucket each would admit twice the burst


def test_the_client_waits_out_the_limit_and_every_write_lands_once(limited: Secured) -> None:
    key = limited.key("writer", tenant="rl-client")
    count = BURST + 10
    started = time.monotonic()
    with GraphQLSessionRepository(limited.server.url, token=key, retries=20) as repository:
        repository.create_session(Session(session_id="paced", session_type=SessionType.AGENT))
        repository.create_agent("paced", SessionAgent(agent_id="a", state={}, conversation_manager_state={}))
        for n in range(count):
            message = {"role": "user", "content": [{"text": str(n)}]}
            repository.create_message("paced", "a", SessionMessage(message, n))  # type: ignore[arg-type]
        stored = repository.list_messages("paced", "a")
    elapsed = time.monotonic() - started

    assert [m.message["content"][0]["text"] for m in stored] == [str(n) for n in range(count)]
    # count + 3 requests (with the reads) against a burst of 5 refilled at 10/s.
    assert elapsed >= (count + 3 - BURST) / RATE * 0.8
