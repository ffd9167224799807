"""The request log: one line per request with its id, operation, outcome, status, duration, tenant
and caller, as text or JSON, and never the request's content, variables or credentials."""

import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from graphql_api.request_log import logger
from graphql_api.settings import Settings, SettingsError
from tests.conftest import RunningServer

SECRET_WORDS = "the customer's card number is 4111 1111 1111 1111"
APPEND = """
mutation Append($s: String!, $m: MessageInput!) {
  createMessage(sessionId: $s, agentId: "support", message: $m) { messageId }
}"""


@pytest.fixture(scope="module")
def json_server(database_url: str) -> Iterator[RunningServer]:
    server = RunningServer(Settings(database_url=database_url, log_format="json"))
    server.start()
    yield server
    server.stop()


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == logger.name]


def test_each_request_is_one_json_line_without_its_content(
    json_server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    message = {"messageId": 0, "message": {"role": "user", "content": [{"text": SECRET_WORDS}]}}
    with caplog.at_level(logging.INFO, logger=logger.name), httpx.Client(timeout=30) as client:
        answer = client.post(
            json_server.url,
            json={"query": APPEND, "variables": {"s": "no-such-session", "m": message}},
            headers={"X-Tenant": "acme"},
        )
        ok = client.post(
            json_server.url, json={"query": "query Ping { __typename }"}, headers={"X-Tenant": "acme"}
        )
        bad = client.post(json_server.url, content=b"{not json", headers={"Content-Type": "application/json"})
        stranger = client.post(
            json_server.url,
            json={"query": "query Ping { __typename }"},
            headers={"Authorization": "Bearer sgq_not_a_real_key_but_secret"},
        )
    lines = _lines(caplog)
    assert len(lines) == 4, lines
    failed, fine, refused, unknown = (json.loads(line) for line in lines)
    assert (unknown["outcome"], unknown["status"], unknown["caller"]) == ("UNAUTHENTICATED", 401, None)
    assert stranger.status_code == 401
    assert answer.json()["errors"][0]["extensions"]["code"] == failed["outcome"] == "NOT_FOUND"
    assert failed["request_id"] == answer.headers["x-request-id"]
    assert (failed["operation"], failed["status"], failed["tenant"], failed["method"]) == (
        "Append",
        200,
        "acme",
        "POST",
    )
    assert failed["caller"] == "anonymous (open server)" and failed["duration_ms"] > 0
    assert (fine["operation"], fine["outcome"], fine["request_id"]) == (
        "Ping",
        "ok",
        ok.headers["x-request-id"],
    )
    assert (refused["outcome"], refused["status"], refused["operation"]) == (
        "BAD_REQUEST",
        bad.status_code,
        None,
    )
    assert set(failed) == {
        "time",
        "request_id",
        "upstream_request_id",
        "method",
        "operation",
        "outcome",
        "status",
        "duration_ms",
        "tenant",
        "caller",
    }
    for line in lines:
        assert "4111" not in line and "card number" not in line and "sgq_not_a_real" not in line


def test_the_text_line_reads_in_one_glance(server: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=logger.name):
        answer = httpx.post(
            server.url, json={"query": "query Ping { __typename }"}, headers={"X-Request-ID": "lb-7"}
        )
    (line,) = _lines(caplog)
    request_id = answer.headers["x-request-id"]
    assert line.startswith(f"{request_id} (upstream lb-7) POST Ping ok 200 ")
    assert line.endswith(" ms tenant=- caller='anonymous (open server)'")


def test_a_log_format_other_than_text_or_json_is_refused() -> None:
    with pytest.raises(SettingsError, match="SESSION_GRAPHQL_LOG_FORMAT must be text or json"):
        Settings.from_env({"SESSION_GRAPHQL_LOG_FORMAT": "xml"})
