"""Search and hourly stats over the bulk-loaded messages, as a dashboard of tenant ``default`` asks.

``searchMessages`` takes turns over a few queries in web search syntax (common words, a phrase,
an exclusion) with snippets and ranks, best first (RELEVANCE, the default), then the same queries
newest first (``orderBy: NEWEST``, as the Grafana panel asks); ``conversationStats`` is the README's
hourly query (bucket HOUR over the loaded day, by agent, with latency percentiles). Requests go
one at a time over one kept-alive connection; the figure is the 95th percentile of their wall
time, after a warm-up. Each order of the searches, and the stats, get ``query_calls`` requests, or
fewer (at least 20) when they take over ``query_seconds``.
"""

import statistics
import time
from typing import Any

import httpx

from bench.bulk_load import Layout
from bench.report import Row, duration
from bench.run_context import BenchRun

BUDGET_SECONDS = 0.050
WARMUP = 3
MIN_CALLS = 20
SEARCHES = ("refund", '"late delivery"', "voucher -duplicate", "captured payments")
SEARCH = """
query Search($query: String!, $order: SearchOrder!) {
  searchMessages(query: $query, first: 20, orderBy: $order) {
    edges { rank snippet node { sessionId agentId messageId role text createdAt } }
  }
}"""
ORDERS = {"RELEVANCE": "searchMessages", "NEWEST": "searchMessages orderBy NEWEST"}
"""Each order of the searches, and the name of its row."""
STATS_ROW = "conversationStats HOUR, 1 day"
STATS = """
query Hourly($from: Time!, $to: Time!) {
  conversationStats(bucket: HOUR, from: $from, to: $to, groupBy: AGENT) {
    rows { bucketStart key messages inputTokens outputTokens totalTokens avgLatencyMs p95LatencyMs }
    totals { messages sessions totalTokens p95LatencyMs toolCalls toolErrors }
  }
}"""


def _p95(timings: list[float]) -> float:
    return statistics.quantiles(timings, n=20)[18]


def _timed(
    client: httpx.Client, url: str, requests: list[dict[str, Any]], calls: int, seconds: float
) -> list[list[float]]:
    """Wall times of each request, taking turns: one list per request."""
    timings: list[list[float]] = [[] for _ in requests]
    deadline = time.perf_counter() + seconds
    for number in range(WARMUP + calls):
        if number - WARMUP >= MIN_CALLS and time.perf_counter() > deadline:
            break
        body = requests[number % len(requests)]
        start = time.perf_counter()
        answer = client.post(url, json=body).json()
        elapsed = time.perf_counter() - start
        if "errors" in answer:
            raise RuntimeError(f"{body['query'].split()[1]}: {answer['errors']}")
        if number >= WARMUP:
            timings[number % len(requests)].append(elapsed)
    return timings


def _check_stats(client: httpx.Client, url: str, request: dict[str, Any], layout: Layout) -> None:
    totals = client.post(url, json=request).json()["data"]["conversationStats"]["totals"]
    if totals["messages"] < layout.messages:
        raise RuntimeError(
            f"stats count {totals['messages']} messages in the day, fewer than the {layout.messages} loaded"
        )


def run(bench: BenchRun) -> list[Row]:
    layout = bench.stored_messages()
    calls = bench.sizes.query_calls
    bench.log(f"search and stats: up to {calls} requests each over {layout.messages:,} messages")
    stats = [
        {
            "query": STATS,
            "variables": {"from": layout.day_start.isoformat(), "to": layout.day_end.isoformat()},
        }
    ]
    headers = {**bench.server.headers, "X-Tenant": "default"}
    seconds = bench.sizes.query_seconds
    timings: dict[str, list[float] | str] = {}  # wall times by row, or the error that stopped them
    with httpx.Client(headers=headers, timeout=60) as client:
        _check_stats(client, bench.server.url, stats[0], layout)
        for order, name in ORDERS.items():
            searches = [
                {"query": SEARCH, "variables": {"query": words, "order": order}} for words in SEARCHES
            ]
            by_search = _timed(client, bench.server.url, searches, calls, seconds)
            medians = ", ".join(
                f"{words} {duration(statistics.median(times))}"
                for words, times in zip(SEARCHES, by_search, strict=True)
            )
            bench.log(f"search {order}: median by query: {medians}")
            timings[name] = [elapsed for times in by_search for elapsed in times]
        try:
            timings[STATS_ROW] = _timed(client, bench.server.url, stats, calls, seconds)[0]
        except RuntimeError as error:  # STATEMENT_TIMEOUT over 1,000,000 messages: the searches still count
            timings[STATS_ROW] = f"error: {str(error)[:80]}"
    return [_row(f"{name} over {layout.messages:,} msgs (p95)", times) for name, times in timings.items()]


def _row(case: str, timings: list[float] | str) -> Row:
    target = f"p95 < {BUDGET_SECONDS * 1e3:.0f} ms"
    if isinstance(timings, str):
        return Row(case, timings, "-", "-", target, False)
    p95 = _p95(timings)
    figure = f"{duration(p95)} (median {duration(statistics.median(timings))}, n={len(timings)})"
    return Row(case, figure, "-", "-", target, p95 < BUDGET_SECONDS)
