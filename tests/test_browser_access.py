"""What browsers and explorers may do: CORS for dashboards on other origins, introspection switched off."""

from collections.abc import Iterator

import httpx
import pytest

from graphql_api.settings import Settings
from tests.conftest import RunningServer

DASHBOARD = "https://grafana.example.com"


@pytest.fixture(scope="module")
def locked_down(database_url: str) -> Iterator[httpx.Client]:
    server = RunningServer(
        Settings(database_url=database_url, cors_origins=(DASHBOARD,), introspection=False, graphiql=False)
    )
    server.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            yield client
    finally:
        server.stop()


def test_a_dashboard_origin_in_the_setting_may_call_with_credentials_headers(
    locked_down: httpx.Client,
) -> None:
    preflight = locked_down.options(
        "/graphql",
        headers={
            "Origin": DASHBOARD,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-tenant",
        },
    )
    answer = locked_down.post("/graphql", json={"query": "{ __typename }"}, headers={"Origin": DASHBOARD})

    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == DASHBOARD
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert answer.headers["access-control-allow-origin"] == DASHBOARD
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()


def test_another_origin_is_not_allowed(locked_down: httpx.Client, server: RunningServer) -> None:
    preflight = locked_down.options(
        "/graphql", headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"}
    )
    default = httpx.post(server.url, json={"query": "{ __typename }"}, headers={"Origin": DASHBOARD})

    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in default.headers  # no CORS unless configured


def test_introspection_can_be_switched_off(locked_down: httpx.Client, server: RunningServer) -> None:
    query = {"query": "{ __schema { queryType { name } } }"}

    refused = locked_down.post("/graphql", json=query).json()
    allowed = httpx.post(server.url, json=query).json()

    assert refused["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "introspection" in refused["errors"][0]["message"].lower()
    assert allowed == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
    assert locked_down.post("/graphql", json={"query": "{ __typename }"}).json() == {
        "data": {"__typename": "Query"}
    }


def test_graphiql_can_be_switched_off(locked_down: httpx.Client) -> None:
    page = locked_down.get("/graphql", headers={"Accept": "text/html"})

    assert page.status_code == 404
    assert page.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
