"""API keys and roles: who may run which operation, on a server that needs credentials."""

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from db.migrate import upgrade
from graphql_api.auth.permissions import MUTATION_ROLES, QUERY_ROLES, SUBSCRIPTION_ROLES
from graphql_api.schema import schema
from graphql_api.settings import Settings
from tests.api_calls import assert_error, data_of
from tests.conftest import RunningServer
from tests.scratch_database import scratch_database
from tests.secured import Secured, secured_server

CREATE_SESSION = "mutation($s: String!) { createSession(session: {sessionId: $s}) { sessionId tenant } }"
READ_SESSION = "query($s: String!) { session(sessionId: $s) { sessionId } }"
DELETE_SESSION = "mutation($s: String!) { deleteSession(sessionId: $s) }"


@pytest.fixture(scope="module")
def secured(database_url: str) -> Iterator[Secured]:
    # Keys re-read quickly, so revocation tests need not wait long.
    with secured_server(database_url, Settings(key_refresh_seconds=0.3)) as running:
        yield running


@pytest.fixture(scope="module")
def keys(secured: Secured) -> dict[str, str]:
    return {role: secured.key(role, tenant="acme") for role in ("reader", "writer", "admin")}


def test_every_root_field_of_the_schema_has_a_role_in_the_matrix() -> None:
    """A new root field must be given a role; until then access control fails closed (admin only)."""
    graphql_schema = schema._schema
    assert graphql_schema.query_type is not None and graphql_schema.mutation_type is not None
    assert set(graphql_schema.query_type.fields) | {"__typename", "__schema", "__type"} == set(QUERY_ROLES)
    assert set(graphql_schema.mutation_type.fields) | {"__typename"} == set(MUTATION_ROLES)
    assert graphql_schema.subscription_type is not None
    assert set(graphql_schema.subscription_type.fields) | {"__typename"} == set(SUBSCRIPTION_ROLES)
    assert set(SUBSCRIPTION_ROLES.values()) == {"reader"}  # who may read may watch


def test_deletes_and_key_management_need_admin_and_writes_need_writer() -> None:
    assert {name for name, role in MUTATION_ROLES.items() if role == "admin"} == {
        "deleteSession",
        "deleteAgent",
        "deleteMessage",
        "deleteMultiAgent",
        "deleteStorageObject",
        "createApiKey",
        "revokeApiKey",
        "deleteSessions",
        "setRetentionRule",
        "removeRetentionRule",
    }
    assert {name for name, role in QUERY_ROLES.items() if role != "reader"} == {
        "auditEvents",
        "apiKeys",
        "retentionRules",
    }
    assert all(
        role == "writer"
        for name, role in MUTATION_ROLES.items()
        if name.startswith(("create", "update", "append")) and "ApiKey" not in name
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer sgq_0123456789abcdef_" + "A" * 43},
        {"Authorization": "Bearer sgq_not-a-key"},
        {"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"},
    ],
    ids=["none", "empty-bearer", "basic", "unknown-key", "malformed-key", "jwt-without-issuer"],
)
def test_missing_or_bad_credentials_are_http_401_unauthenticated_and_change_nothing(
    secured: Secured, keys: dict[str, str], headers: dict[str, str]
) -> None:
    response = secured.post(CREATE_SESSION, {"s": "refused"}, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "Traceback" not in response.text
    assert data_of(secured.graphql(READ_SESSION, {"s": "refused"}, key=keys["admin"]))["session"] is None


def test_a_reader_queries_but_cannot_write(secured: Secured, keys: dict[str, str]) -> None:
    data_of(secured.graphql(CREATE_SESSION, {"s": "for-reader"}, key=keys["writer"]))

    assert data_of(secured.graphql(READ_SESSION, {"s": "for-reader"}, key=keys["reader"])) == {
        "session": {"sessionId": "for-reader"}
    }
    error = assert_error(secured.graphql(CREATE_SESSION, {"s": "by-reader"}, key=keys["reader"]), "FORBIDDEN")
    assert "writer" in error["message"]
    assert data_of(secured.graphql(READ_SESSION, {"s": "by-reader"}, key=keys["admin"]))["session"] is None


def test_a_writer_writes_but_cannot_delete(secured: Secured, keys: dict[str, str]) -> None:
    data_of(secured.graphql(CREATE_SESSION, {"s": "kept"}, key=keys["writer"]))

    error = assert_error(secured.graphql(DELETE_SESSION, {"s": "kept"}, key=keys["writer"]), "FORBIDDEN")

    assert "deleteSession needs the admin role" in error["message"]
    assert data_of(secured.graphql(READ_SESSION, {"s": "kept"}, key=keys["reader"]))["session"] is not None
    assert data_of(secured.graphql(DELETE_SESSION, {"s": "kept"}, key=keys["admin"])) == {
        "deleteSession": True
    }


def test_a_document_with_an_allowed_write_and_a_forbidden_delete_changes_nothing(
    secured: Secured, keys: dict[str, str]
) -> None:
    data_of(secured.graphql(CREATE_SESSION, {"s": "victim"}, key=keys["writer"]))
    document = """mutation {
      first: createSession(session: {sessionId: "sneaked-in"}) { sessionId }
      ...Deletes
    }
    fragment Deletes on Mutation { deleteSession(sessionId: "victim") }"""

    body = secured.graphql(document, key=keys["writer"])

    assert_error(body, "FORBIDDEN")
    assert body["data"] is None
    assert data_of(secured.graphql(READ_SESSION, {"s": "sneaked-in"}, key=keys["admin"]))["session"] is None
    assert data_of(secured.graphql(READ_SESSION, {"s": "victim"}, key=keys["admin"]))["session"] is not None


def test_admin_only_queries_are_refused_to_writers(secured: Secured, keys: dict[str, str]) -> None:
    for query in ("{ auditEvents { nodes { action } } }", "{ apiKeys { label } }"):
        assert_error(secured.graphql(query, key=keys["writer"]), "FORBIDDEN")
        assert "errors" not in secured.graphql(query, key=keys["admin"])


def test_the_graphiql_page_needs_no_credentials_but_queries_from_it_do(secured: Secured) -> None:
    page = secured.http.get("/graphql", headers={"Accept": "text/html"})
    query = secured.http.get("/graphql", params={"query": "{ __typename }"})

    assert page.status_code == 200 and "<html" in page.text.lower()
    assert query.status_code == 401


def test_health_and_readiness_need_no_credentials(secured: Secured) -> None:
    assert secured.http.get("/health").status_code == 200
    assert secured.http.get("/ready").status_code == 200


def test_a_key_made_on_another_replica_works_at_once_and_a_revoked_one_stops_within_seconds(
    secured: Secured, keys: dict[str, str]
) -> None:
    other_replica = RunningServer(Settings(database_url=secured.database_url, key_refresh_seconds=0.3))
    other_replica.start()
    try:
        make = 'mutation { createApiKey(role: WRITER, label: "short-lived") { key apiKey { tenant role } } }'
        made = data_of(secured.graphql(make, key=keys["admin"]))["createApiKey"]
        new_key = made["key"]
        assert made["apiKey"] == {"tenant": "acme", "role": "WRITER"}  # an acme admin makes acme keys
        on_other = Secured(other_replica, secured.database_url)
        assert on_other.post(READ_SESSION, {"s": "x"}, key=new_key).status_code == 200

        revoked = secured.graphql(
            'mutation { revokeApiKey(label: "short-lived") { revokedAt } }', key=keys["admin"]
        )
        assert data_of(revoked)["revokeApiKey"]["revokedAt"] is not None

        deadline = time.monotonic() + 5
        statuses: list[int] = []
        while time.monotonic() < deadline:
            statuses = [
                r.post(READ_SESSION, {"s": "x"}, key=new_key).status_code for r in (secured, on_other)
            ]
            if statuses == [401, 401]:
                break
            time.sleep(0.1)
        assert statuses == [401, 401]
    finally:
        other_replica.stop()


def test_key_list_shows_labels_roles_tenants_and_last_use_but_never_a_secret(
    secured: Secured, keys: dict[str, str]
) -> None:
    secured.graphql(READ_SESSION, {"s": "x"}, key=keys["reader"])
    deadline = time.monotonic() + 5
    listed: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        listed = data_of(
            secured.graphql(
                "{ apiKeys { label keyId role tenant createdAt createdBy lastUsedAt revokedAt } }",
                key=keys["admin"],
            )
        )["apiKeys"]
        if all(k["lastUsedAt"] for k in listed if k["role"] == "READER"):
            break
        time.sleep(0.2)

    assert {k["tenant"] for k in listed} == {"acme"}  # an acme admin lists acme's keys only
    reader = next(k for k in listed if k["role"] == "READER")
    assert reader["lastUsedAt"] is not None
    secret = keys["reader"][len("sgq_") + 17 :]  # sgq_<16 hex digits>_<secret>
    assert secret not in str(listed)


def test_a_tenant_admin_cannot_make_keys_for_another_tenant_or_without_one(
    secured: Secured, keys: dict[str, str]
) -> None:
    body = secured.graphql(
        'mutation { createApiKey(role: ADMIN, tenant: "globex") { key } }', key=keys["admin"]
    )

    assert_error(body, "FORBIDDEN")
    root = secured.key("admin")
    made = secured.graphql(
        'mutation { createApiKey(role: READER, tenant: "globex") { apiKey { tenant } } }', key=root
    )
    assert data_of(made)["createApiKey"]["apiKey"]["tenant"] == "globex"


def test_a_label_in_force_cannot_be_reused_within_a_tenant_but_can_in_another(secured: Secured) -> None:
    root = secured.key("admin")
    make = 'mutation($t: String) { createApiKey(role: READER, tenant: $t, label: "dashboard") { key } }'

    assert "errors" not in secured.graphql(make, {"t": "initech"}, key=root)
    assert_error(secured.graphql(make, {"t": "initech"}, key=root), "ALREADY_EXISTS")
    assert "errors" not in secured.graphql(make, {"t": "umbrella"}, key=root)
    # Revoking by label alone is ambiguous now: the server says so instead of guessing.
    assert_error(
        secured.graphql('mutation { revokeApiKey(label: "dashboard") { label } }', key=root), "CONFLICT"
    )
    revoke = 'mutation { revokeApiKey(label: "dashboard", tenant: "initech") { tenant } }'
    assert data_of(secured.graphql(revoke, key=root))["revokeApiKey"]["tenant"] == "initech"
    assert "errors" not in secured.graphql(make, {"t": "initech"}, key=root)


def test_an_open_server_closes_when_the_first_key_is_made_and_stays_closed_when_it_is_revoked(
    database_url: str,
) -> None:

    with scratch_database(database_url) as url:
        upgrade(url)
        server = RunningServer(Settings(database_url=url, key_refresh_seconds=0.3))
        server.start()
        try:
            anyone = Secured(server, url)
            assert anyone.post(READ_SESSION, {"s": "x"}).status_code == 200  # open: no key was ever made
            first = anyone.graphql('mutation { createApiKey(role: ADMIN, label: "first") { key } }')
            made = data_of(first)["createApiKey"]["key"]

            assert _eventually_status(anyone, None, 401)
            assert anyone.post(READ_SESSION, {"s": "x"}, key=made).status_code == 200

            anyone.graphql('mutation { revokeApiKey(label: "first") { label } }', key=made)
            assert _eventually_status(anyone, made, 401)
            assert anyone.post(READ_SESSION, {"s": "x"}).status_code == 401  # no key left, still closed
        finally:
            server.stop()


def _eventually_status(secured: Secured, key: str | None, status: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if secured.post(READ_SESSION, {"s": "x"}, key=key).status_code == status:
            return True
        time.sleep(0.1)
    return False


def test_a_key_command_for_another_tenant_refuses_the_whole_document(
    secured: Secured, keys: dict[str, str]
) -> None:
    document = """mutation($t: String) {
      createSession(session: {sessionId: "before-the-key"}) { sessionId }
      createApiKey(role: ADMIN, tenant: $t) { key }
    }"""

    body = secured.graphql(document, {"t": "globex"}, key=keys["admin"])

    assert_error(body, "FORBIDDEN")
    assert (
        data_of(secured.graphql(READ_SESSION, {"s": "before-the-key"}, key=keys["admin"]))["session"] is None
    )


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"])
def test_an_open_server_refuses_requests_that_came_through_a_proxy(
    server: RunningServer, header: str
) -> None:
    forwarded = httpx.post(server.url, json={"query": "{ __typename }"}, headers={header: "203.0.113.7"})
    local = httpx.post(server.url, json={"query": "{ __typename }"})

    assert forwarded.status_code == 401
    assert "token create" in forwarded.json()["errors"][0]["message"]
    assert local.status_code == 200


def test_an_insecure_server_serves_everyone_it_is_forwarded(database_url: str) -> None:
    with scratch_database(database_url) as url:
        upgrade(url)
        insecure = RunningServer(Settings(database_url=url, insecure=True))
        insecure.start()
        try:
            forwarded = httpx.post(
                insecure.url, json={"query": "{ __typename }"}, headers={"X-Forwarded-For": "203.0.113.7"}
            )
        finally:
            insecure.stop()
    assert forwarded.status_code == 200
