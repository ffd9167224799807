"""The Grafana service dashboard (grafana/dashboards/session-graphql-service.json), run against a real
server's metrics: each panel's PromQL is read from the JSON, its variables filled in as Grafana fills
them (``$job`` at All, its ``.*``), and evaluated over two scrapes of ``serve --metrics-port`` taken
around known traffic (``tests.promql_subset``, Prometheus' own semantics); no Prometheus nor
Grafana runs here.
"""

import json
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from db.migrate import upgrade
from tests.metrics_server import Served, analyze, scrape, value
from tests.promql_subset import Scrapes, Vector, evaluate
from tests.scratch_database import scratch_database

REPO = Path(__file__).resolve().parent.parent
DASHBOARD_FILE = REPO / "grafana" / "dashboards" / "session-graphql-service.json"
DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
PANELS: list[dict[str, Any]] = DASHBOARD["panels"]
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")
GRAFANA_GLOBALS = {"__rate_interval", "__interval"}
ALL = {"job": ".*"}

PING = "query Ping { __typename }"
APPEND = """
mutation Append($s: String!, $n: Int! = 0) {
  appendMessages(
    sessionId: $s, agentId: "a", messages: [{messageId: $n, message: {role: "user", content: []}}]
  ) { messageId }
}"""
AGENT = """
mutation Agent($s: String!) {
  createAgent(sessionId: $s, agent: {agentId: "a", state: {}, conversationManagerState: {}}) { agentId }
}"""
CREATE = "mutation Create($id: String!) { createSession(session: {sessionId: $id}) { sessionId } }"


def expressions(panel: dict[str, Any]) -> list[str]:
    return [target["expr"] for target in panel["targets"]]


def filled(expression: str) -> str:
    """As Grafana sends it: template variables replaced, ``$__rate_interval`` by a range."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return "1m" if name in GRAFANA_GLOBALS else ALL[name]

    return VARIABLE.sub(replace, expression)


def panel(title: str) -> dict[str, Any]:
    (found,) = (each for each in PANELS if each["title"] == title)
    return found


def by(vector: Vector, label: str) -> dict[str, float]:
    return {dict(labels).get(label, ""): number for labels, number in vector.items()}


def test_the_dashboard_is_ready_to_import() -> None:
    variables = {variable["name"]: variable for variable in DASHBOARD["templating"]["list"]}
    assert DASHBOARD["uid"] == "session-graphql-service"
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    assert variables["job"]["allValue"] == ".*" and variables["job"]["includeAll"]
    assert len({each["id"] for each in PANELS}) == len(PANELS)
    for each in PANELS:
        assert each["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, each["title"]
        ref_ids = [target["refId"] for target in each["targets"]]
        assert len(set(ref_ids)) == len(ref_ids) and ref_ids, each["title"]
        for expression in expressions(each):
            used = {m.group(1) or m.group(2) for m in VARIABLE.finditer(expression)}
            assert used <= set(ALL) | GRAFANA_GLOBALS, (each["title"], used)
            assert 'job=~"$job"' in expression, (each["title"], "every series is kept to the chosen jobs")


def test_the_dashboard_shows_a_panel_for_each_question() -> None:
    assert [each["title"] for each in PANELS] == [
        "Requests per second",
        "Errors",
        "p95 latency",
        "Rollup lag",
        "Requests by operation",
        "Errors by code",
        "Latency",
        "p95 latency by operation",
        "Database pool",
        "Refusals",
        "Rollup fold",
        "Retention deletions",
        "Stored per tenant",
    ]


@pytest.fixture(scope="module")
def scrapes(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scrapes]:
    """Two scrapes around 6 pings, 4 anonymous requests and 2 appends to a missing session (each
    kind made once before the first, so that its series is in both, as ``rate`` needs)."""
    with scratch_database(database_url) as url:
        upgrade(url)
        log = tmp_path_factory.mktemp("service-dashboard") / "serve.log"
        served = Served(url, log, env={"SESSION_GRAPHQL_METRICS_REFRESH_SECONDS": "1"})
        try:
            for session_id in ("one", "two"):
                served.post(CREATE, {"id": session_id})
            served.post(AGENT, {"s": "one"})
            for number in (0, 1):  # a value met once is no most common value, for PostgreSQL
                assert "errors" not in served.post(APPEND, {"s": "one", "n": number}).json()
            analyze(url)
            for query in (PING, "{ __typename }", APPEND):
                served.post(query, {"s": "missing"})
            deadline = time.monotonic() + 20
            while (
                value(before := scrape(served.metrics_port), "session_graphql_stored_sessions", tenant="acme")
                != 2
            ):
                assert time.monotonic() < deadline, "stored sessions never refreshed"
                time.sleep(0.2)
            started = time.monotonic()
            for _ in range(6):
                served.post(PING)
            for _ in range(4):
                served.post("{ __typename }")
            for _ in range(2):
                assert (
                    served.post(APPEND, {"s": "missing"}).json()["errors"][0]["extensions"]["code"]
                    == "NOT_FOUND"
                )
            after = scrape(served.metrics_port)
            yield Scrapes(before, after, time.monotonic() - started)
        finally:
            served.stop()


@pytest.mark.parametrize("title", [each["title"] for each in PANELS])
def test_every_panel_query_reads_series_the_server_exposes(scrapes: Scrapes, title: str) -> None:
    for expression in expressions(panel(title)):
        result = evaluate(filled(expression), scrapes)
        assert result, f"{title}: {expression} finds no series"


def test_requests_and_errors_panels_count_the_known_traffic(scrapes: Scrapes) -> None:
    seconds = scrapes.seconds

    def counted(title: str, label: str) -> dict[str, float]:
        (expression,) = expressions(panel(title))
        return {
            key: round(rate * seconds, 6)
            for key, rate in by(evaluate(filled(expression), scrapes), label).items()
            if rate  # operations of the setup only: none between the scrapes
        }

    assert counted("Requests by operation", "operation") == {"Ping": 6, "anonymous": 4, "Append": 2}
    assert counted("Errors by code", "outcome") == {"NOT_FOUND": 2}
    assert counted("Requests per second", "") == {"": 12}
    (ratio,) = evaluate(filled(expressions(panel("Errors"))[0]), scrapes).values()
    assert ratio == pytest.approx(2 / 12)


def test_latency_panels_give_a_duration_within_the_histograms_buckets(scrapes: Scrapes) -> None:
    (p95,) = evaluate(filled(expressions(panel("p95 latency"))[0]), scrapes).values()
    by_operation = by(
        evaluate(filled(expressions(panel("p95 latency by operation"))[0]), scrapes), "operation"
    )
    assert 0 < p95 <= 30
    # Operations with no requests between the scrapes have no quantile (NaN), as in Prometheus.
    answered = {operation: each for operation, each in by_operation.items() if not math.isnan(each)}
    assert set(answered) == {"Ping", "anonymous", "Append"}
    assert all(0 < each <= 30 for each in answered.values())


def test_pool_rollup_and_tenant_panels_show_the_servers_gauges(scrapes: Scrapes) -> None:
    in_use, waiting = (evaluate(filled(e), scrapes) for e in expressions(panel("Database pool")))
    assert list(in_use.values()) == [value(scrapes.after, "session_graphql_db_pool_connections_in_use")]
    assert list(waiting.values()) == [0]
    lag, _ = (evaluate(filled(e), scrapes) for e in expressions(panel("Rollup fold")))
    assert list(lag.values()) == [value(scrapes.after, "session_graphql_rollup_lag_seconds")]
    sessions, messages = (evaluate(filled(e), scrapes) for e in expressions(panel("Stored per tenant")))
    assert (by(sessions, "tenant"), by(messages, "tenant")) == ({"acme": 2}, {"acme": 2})


def readme_alerts() -> list[dict[str, Any]]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Metrics", 1)[1].split("\n### ", 1)[0]
    blocks = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)]
    (rules,) = [block for block in blocks if "groups" in block]
    alerts: list[dict[str, Any]] = rules["groups"][0]["rules"]
    return alerts


def test_the_readmes_alerts_read_the_servers_series_and_stay_quiet_on_healthy_traffic(
    scrapes: Scrapes,
) -> None:
    alerts = readme_alerts()
    assert [alert["alert"] for alert in alerts] == [
        "SessionStoreErrors",
        "SessionStoreSlow",
        "SessionStoreRollupLag",
    ]
    conditions = {}
    for alert in alerts:
        condition, _, threshold = alert["expr"].rpartition(" > ")
        assert float(threshold) > 0 and alert["for"] == "10m"
        conditions[alert["alert"]] = condition
        # Two NOT_FOUND answers are the callers' mistakes, not the server's: nothing fires.
        assert evaluate(alert["expr"], scrapes) == {}, alert["alert"]
    # No server-side error happened, so the error ratio has no series (as in Prometheus); counted
    # as one, the two NOT_FOUND among the twelve requests make the ratio the alert compares.
    as_if = conditions["SessionStoreErrors"].replace('STATEMENT_TIMEOUT"', 'STATEMENT_TIMEOUT|NOT_FOUND"')
    assert list(evaluate(as_if, scrapes).values()) == [pytest.approx(2 / 12)]
    (p95,) = evaluate(conditions["SessionStoreSlow"], scrapes).values()
    assert 0 < p95 < 1
    assert list(evaluate(conditions["SessionStoreRollupLag"], scrapes).values()) == [
        value(scrapes.after, "session_graphql_rollup_lag_seconds")
    ]
