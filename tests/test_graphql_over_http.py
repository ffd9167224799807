"""The GraphQL-over-HTTP spec's ``application/graphql-response+json``: a client that asks for it gets
that content type, and a request error (a document that does not parse or validate, variables that
cannot be coerced, a document refused by a limit, a body that is not a GraphQL request) is HTTP 400
with no ``data`` entry. A client asking for ``application/json`` keeps the legacy answers."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from graphql_api.media_types import wants_graphql_response

NEW = "application/graphql-response+json"
CONTENT_TYPE = "application/graphql-response+json; charset=utf-8"


def post(http: httpx.Client, body: Any, accept: str | None = NEW) -> httpx.Response:
    headers = {} if accept is None else {"accept": accept}
    return http.post("/graphql", json=body, headers=headers)


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("application/json", False),
        (NEW, True),
        (f"{NEW}, application/json", True),
        (f"application/json, {NEW}", True),  # a tie goes to the spec's own type
        (f"{NEW};q=0.9, application/json", False),
        (f"{NEW}, application/json;q=0.9", True),
        (f"{NEW};q=0", False),
        (f"{NEW};q=nonsense", False),
        (f"{NEW.upper()}; charset=utf-8", True),
    ],
)
def test_accept_negotiation(accept: str | None, wanted: bool) -> None:
    assert wants_graphql_response(accept) is wanted


def test_a_query_answers_with_the_asked_media_type(http: httpx.Client) -> None:
    response = post(http, {"query": "{ __typename }"})
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"query": "{ __typename"}, "GRAPHQL_PARSE_FAILED"),
        ({"query": "{ noSuchField }"}, "GRAPHQL_VALIDATION_FAILED"),
        (
            {"query": "query($id: String!) { session(sessionId: $id) { sessionId } }", "variables": {}},
            None,
        ),
        (
            {
                "query": "query($id: String!) { session(sessionId: $id) { sessionId } }",
                "variables": {"id": 7},
            },
            None,
        ),
        ({"query": "{ " + "a: __typename " * 5000 + "}"}, None),  # refused by a limit, not executed
    ],
    ids=["parse", "validation", "missing-variable", "uncoercible-variable", "limit"],
)
def test_a_request_error_is_400_without_data(http: httpx.Client, body: Any, code: str | None) -> None:
    response = post(http, body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == CONTENT_TYPE
    answer = response.json()
    assert "data" not in answer
    assert answer["errors"]
    if code is not None:
        assert answer["errors"][0]["extensions"]["code"] == code
    assert all(error["extensions"].get("code") for error in answer["errors"])


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'"a string"', b'{"query": 1}', b'{"variables": {}}', b'[{"query": "{ __typename }"}]'],
    ids=["malformed", "not-an-object", "query-not-a-string", "no-query", "batch"],
)
def test_a_body_that_is_not_a_request_is_400_in_the_asked_type(http: httpx.Client, body: bytes) -> None:
    response = http.post(
        "/graphql", content=body, headers={"accept": NEW, "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == CONTENT_TYPE
    assert "data" not in response.json()


def test_a_field_error_keeps_200_and_its_data(http: httpx.Client, new_id: Callable[[str], str]) -> None:
    # A field that fails is not a request error: execution ran and the answer says where it failed.
    body = {
        "query": "query($id: String!) { session(sessionId: $id) { sessionId } }",
        "variables": {"id": "bad/id"},
    }
    response = post(http, body)
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    answer = response.json()
    assert "data" in answer
    assert answer["errors"][0]["path"] == ["session"]


@pytest.mark.parametrize("accept", [None, "application/json", "*/*"])
def test_json_clients_keep_the_legacy_answers(http: httpx.Client, accept: str | None) -> None:
    response = post(http, {"query": "{ noSuchField }"}, accept=accept)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["data"] is None
