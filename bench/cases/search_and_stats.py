"""Search and hourly stats over the bulk-loaded messages, as a dashboard of tenant ``default`` asks.

``searchMessages`` takes turns over a few queries in web search syntax (common words, a phrase,
an exclusion) with snippets and ranks; ``conversationStats`` is the README's hourly query (bucket
HOUR over the loaded day, by agent, with latency percentiles). Requests go one at a time over one
kept-alive connection; the figure is the 95th percentile of their wall time, after a warm-up.
Each query gets ``query_calls`` requests, or fewer (at least 20) when they take over
``query_seconds``.
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
query Search($query: String!) {
  searchMessages(query: $query, first: 20) {
    edges { rank snippet node { sessionId agentId messageId role text createdAt } }
  }
}"""
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
    searches = [{"query": SEARCH, "variables": {"query": words}} for words in SEARCHES]
    stats = [
        {
            "query": STATS,
            "variables": {"from": layout.day_start.isoformat(), "to": layout.day_end.isoformat()},
        }
    ]
    headers = {**bench.server.headers, "X-Tenant": "default"}
    with httpx.Client(headers=headers, timeout=60) as client:
        _check_stats(client, bench.server.url, stats[0], layout)
        seconds = bench.sizes.query_seconds
        by_search = _timed(client, bench.server.url, searches, calls, seconds)
        stats_times = _timed(client, bench.server.url, stats, calls, seconds)[0]
    medians = ", ".join(
        f"{words} {duration(statistics.median(times))}"
        for words, times in zip(SEARCHES, by_search, strict=True)
    )
    bench.log(f"search: median by query: {medians}")
    search_times = [elapsed for times in by_search for elapsed in times]
    rows = []
    for name, timings in (("searchMessages", search_times), ("conversationStats HOUR, 1 day", stats_times)):
        p95 = _p95(timings)
        rows.append(
            Row(
                case=f"{name} over {layout.messages:,} msgs (p95)",
                figure=f"{duration(p95)} (median {duration(statistics.median(timings))}, n={len(timings)})",
                reference="-",
                ratio="-",
                target=f"p95 < {BUDGET_SECONDS * 1e3:.0f} ms",
                met=p95 < BUDGET_SECONDS,
            )
        )
    return rows
