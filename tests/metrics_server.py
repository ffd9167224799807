"""``session-graphql serve`` with its metrics port, in a process of its own, and what a scrape of it says."""

import asyncio
import subprocess
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import free_port
from tests.server_process import REPO, SERVE, server_env

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""A scrape: each sample's value by its name and labels."""


def analyze(url: str) -> None:
    """Fresh statistics, which the stored-rows gauges are read from."""

    async def run() -> None:
        engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text("ANALYZE sessions, session_messages"))
        finally:
            await engine.dispose()

    asyncio.run(run())


def scrape(port: int) -> Samples:
    answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert answer.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def requests_by_label(samples: Samples) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["operation"], dict(labels)["outcome"]): count
        for (name, labels), count in samples.items()
        if name == "session_graphql_requests_total"
    }


class Served:
    """``session-graphql serve`` with metrics on, in a process of its own."""

    def __init__(self, database_url: str, log: Path, *more: str, env: dict[str, str] | None = None) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [*SERVE, "--port", str(self.port), "--metrics-port", str(self.metrics_port), *more],
                env={**server_env(database_url), **(env or {})},
                cwd=REPO,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                if self.http.get("/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"not ready:\n{self.output()}")

    def post(
        self, query: str, variables: dict[str, object] | None = None, tenant: str = "acme"
    ) -> httpx.Response:
        return self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers={"X-Tenant": tenant}
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
