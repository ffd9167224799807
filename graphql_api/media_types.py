"""The GraphQL-over-HTTP spec's ``application/graphql-response+json``, for clients that ask for it.

With it, a request that never reached execution (a document that does not parse or validate,
variables that cannot be coerced, a limit that refuses the document) is HTTP 400 with no ``data``
entry, so a client can tell "your request was wrong" from "a field failed" by the status alone.
Clients that ask for ``application/json`` (or nothing in particular) keep the legacy answers:
HTTP 200 with ``"data": null``, as GraphiQL, the client and Grafana expect.
"""

from graphql import GraphQLError

GRAPHQL_RESPONSE = "application/graphql-response+json"
CONTENT_TYPE = f"{GRAPHQL_RESPONSE}; charset=utf-8"
JSON = "application/json"


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return max(0.0, min(1.0, float(value.strip())))
            except ValueError:
                return 0.0
    return 1.0


def wants_graphql_response(accept: str | None) -> bool:
    """Whether ``Accept`` prefers the GraphQL response media type to plain JSON (ties go to it, as
    the spec recommends; ``*/*`` or no header at all keep JSON)."""
    if not accept or GRAPHQL_RESPONSE not in accept.lower():
        return False
    ours, json = 0.0, 0.0
    for media_range in accept.split(","):
        kind, *params = media_range.split(";")
        kind = kind.strip().lower()
        if kind == GRAPHQL_RESPONSE:
            ours = max(ours, _quality(params))
        elif kind == JSON:
            json = max(json, _quality(params))
    return ours > 0 and ours >= json


def is_request_error(data: object, errors: list[GraphQLError]) -> bool:
    """Whether an answer reports a request error: no data, and no error that a field raised (those
    carry a path; parsing, validation, coercion and the document's limits do not)."""
    return data is None and bool(errors) and all(error.path is None for error in errors)
