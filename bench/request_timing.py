"""Wall times of GraphQL requests sent one at a time over one kept-alive connection, and their row.

Requests take turns; the first ``WARMUP`` are not counted (their answers may be checked instead).
A query gets ``calls`` requests, or fewer (at least ``MIN_CALLS``) once they have taken ``seconds``;
the figure is the 95th percentile of their wall time. An answer with errors stops the timing.
"""

import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from bench.report import Row, duration

WARMUP = 3
MIN_CALLS = 20

Check = Callable[[int, dict[str, Any]], None]
"""Raises unless the ``data`` of an answer to the request of that number is right."""


def p95(timings: list[float]) -> float:
    return statistics.quantiles(timings, n=20)[18]


def _described(document: str, errors: list[dict[str, Any]]) -> str:
    """``Stats: STATEMENT_TIMEOUT: The database took longer...``: the operation, the first error's code."""
    operation = document.split()[1].split("(")[0]
    code = errors[0].get("extensions", {}).get("code", "error")
    return f"{operation}: {code}: {errors[0].get('message')}"


def timed(
    client: httpx.Client,
    url: str,
    requests: list[dict[str, Any]],
    calls: int,
    seconds: float,
    check: Check | None = None,
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
            raise RuntimeError(_described(body["query"], answer["errors"]))
        if number >= WARMUP:
            timings[number % len(requests)].append(elapsed)
        elif check is not None:
            check(number % len(requests), answer["data"])
    return timings


def p95_row(case: str, timings: list[float] | str, budget_seconds: float) -> Row:
    """The row of a query's p95 against its budget, or of the error (a string) that stopped it."""
    target = f"p95 < {budget_seconds * 1e3:.0f} ms"
    if isinstance(timings, str):
        return Row(case, timings, "-", "-", target, False)
    figure = f"{duration(p95(timings))} (median {duration(statistics.median(timings))}, n={len(timings)})"
    return Row(case, figure, "-", "-", target, p95(timings) < budget_seconds)
