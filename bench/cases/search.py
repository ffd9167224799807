"""Search over the bulk-loaded messages, as a dashboard of tenant ``default`` asks.

``searchMessages`` takes turns over a few queries in web search syntax (common words, a phrase,
an exclusion) with snippets and ranks, best first (RELEVANCE, the default), then the same queries
newest first (``orderBy: NEWEST``, as the Grafana panel asks). Each order gets ``query_calls``
requests (``bench.request_timing``); its row is the p95 over all its queries.
"""

import statistics

import httpx

from bench.report import Row, duration
from bench.request_timing import p95_row, timed
from bench.run_context import BenchRun

SEARCHES = ("refund", '"late delivery"', "voucher -duplicate", "captured payments")
SEARCH = """
query Search($query: String!, $order: SearchOrder!) {
  searchMessages(query: $query, first: 20, orderBy: $order) {
    edges { rank snippet node { sessionId agentId messageId role text createdAt } }
  }
}"""
ORDERS = {"RELEVANCE": ("searchMessages", 0.100), "NEWEST": ("searchMessages orderBy NEWEST", 0.050)}
"""Each order of the searches: the name of its row, and its p95 budget in seconds."""


def run(bench: BenchRun) -> list[Row]:
    layout = bench.stored_messages()
    calls = bench.sizes.query_calls
    bench.log(f"search: up to {calls} requests per order over {layout.messages:,} messages")
    headers = {**bench.server.headers, "X-Tenant": "default"}
    rows = []
    with httpx.Client(headers=headers, timeout=60) as client:
        for order, (name, budget) in ORDERS.items():
            searches = [
                {"query": SEARCH, "variables": {"query": words, "order": order}} for words in SEARCHES
            ]
            timings: list[float] | str
            try:
                by_search = timed(client, bench.server.url, searches, calls, bench.sizes.query_seconds)
            except (
                RuntimeError,
                httpx.HTTPError,
            ) as error:  # STATEMENT_TIMEOUT: the other order still counts
                bench.log(f"search {order}: {error}")
                timings = f"error: {str(error)[:80]}"
            else:
                medians = ", ".join(
                    f"{words} {duration(statistics.median(times))}"
                    for words, times in zip(SEARCHES, by_search, strict=True)
                )
                bench.log(f"search {order}: median by query: {medians}")
                timings = [elapsed for times in by_search for elapsed in times]
            rows.append(p95_row(f"{name} over {layout.messages:,} msgs (p95)", timings, budget))
    return rows
