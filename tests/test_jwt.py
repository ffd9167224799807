"""Bearer JWTs from an identity provider, against real servers configured for them.

The tests are their own identity provider: they make RSA and EC keys, sign tokens with PyJWT and
serve the keys as a JWKS from a real HTTP server on loopback, which can rotate its keys, go down
and count how often the session server fetched them. Each server runs on a private database, so
no API key exists; with JWTs configured it is never open.
"""

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from strands.types.session import Session, SessionType

from client import GraphQLSessionRepository, SessionUnauthenticatedError
from db.migrate import upgrade
from graphql_api.app import create_app
from graphql_api.auth import jwt as jwt_tokens
from graphql_api.settings import JwtSettings, Limits, Settings, SettingsError
from tests.api_calls import assert_error, data_of
from tests.conftest import RunningServer
from tests.scratch_database import scratch_database

ISSUER = "https://idp.test/realms/agents"
AUDIENCE = "session-graphql"
NAMESPACE = "https://example.com/"

CREATE_SESSION = "mutation($s: String!) { createSession(session: {sessionId: $s}) { sessionId tenant } }"
READ_SESSION = "query($s: String!) { session(sessionId: $s) { sessionId tenant } }"
DELETE_SESSION = "mutation($s: String!) { deleteSession(sessionId: $s) }"
LIST_SESSIONS = "{ sessions(first: 100) { nodes { sessionId tenant } } }"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def claims(*, role: Any = "writer", lifetime: int = 300, **more: Any) -> dict[str, Any]:
    """A provider's usual claims for a new subject; a claim given as None is left out."""
    now = int(time.time())
    made = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": unique("agent"),
        "iat": now,
        "exp": now + lifetime,
        "role": role,
        "jti": uuid.uuid4().hex,
        **more,
    }
    return {name: value for name, value in made.items() if value is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token PyJWT would refuse to make: ``alg: none`` (no secret) or an HMAC over any secret."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    if secret is None:
        return signing_input + "."
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


class IdentityProvider:
    """Signing keys, and their public halves as a JWKS on a real HTTP server on loopback.

    ``fetches`` counts GET requests for the JWKS; ``answer``, when set, is served instead of it
    (status, content type, body); ``stop`` and ``start`` take the endpoint down and back up on the
    same port.
    """

    def __init__(self) -> None:
        self.keys: dict[str, tuple[PrivateKey, str]] = {}
        self.published: dict[str, dict[str, Any]] = {}
        self.fetches = 0
        self.answer: tuple[int, str, bytes] | None = None
        self._lock = threading.Lock()
        self._httpd = self._serve(0)
        self.port = self._httpd.server_address[1]

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/.well-known/jwks.json"

    def add_key(self, alg: str = "RS256") -> str:
        """A new signing key, published at once; returns its kid."""
        kid = unique(alg.lower())
        key: PrivateKey
        if alg == "RS256":
            key = rsa_key()
            jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        else:
            key = ec.generate_private_key(ec.SECP256R1())
            jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        self.keys[kid] = (key, alg)
        with self._lock:
            self.published[kid] = {**jwk, "kid": kid, "use": "sig", "alg": alg}
        return kid

    def rotate(self, alg: str = "RS256") -> str:
        """Publishes a new key in place of all the others; returns its kid."""
        kid = self.add_key(alg)
        with self._lock:
            self.published = {kid: self.published[kid]}
        return kid

    def token(self, kid: str, payload: dict[str, Any] | None = None) -> str:
        """A token signed with the key ``kid`` names, over ``payload`` (a writer's, by default)."""
        key, alg = self.keys[kid]
        return jwt.encode(payload or claims(), key, algorithm=alg, headers={"kid": kid})

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def start(self) -> None:
        self._httpd = self._serve(self.port)

    def _serve(self, port: int) -> ThreadingHTTPServer:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with provider._lock:
                    provider.fetches += 1
                    status, content_type, body = provider.answer or (
                        200,
                        "application/json",
                        json.dumps({"keys": list(provider.published.values())}).encode(),
                    )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=httpd.serve_forever, name="jwks", daemon=True).start()
        return httpd


@contextmanager
def jwt_server(database_url: str, jwt_settings: JwtSettings, limits: Limits | None = None) -> Iterator["Api"]:
    """A server taking JWTs as configured, on a fresh migrated database without API keys."""
    with scratch_database(database_url) as url:
        upgrade(url)
        server = RunningServer(Settings(database_url=url, jwt=jwt_settings, limits=limits or Limits()))
        server.start()
        api = Api(server, httpx.Client(base_url=server.base_url, timeout=30))
        try:
            yield api
        finally:
            api.http.close()
            server.stop()


@dataclass
class Api:
    server: RunningServer
    http: httpx.Client

    def post(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> httpx.Response:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )

    def graphql(self, query: str, variables: dict[str, Any] | None = None, *, token: str) -> dict[str, Any]:
        """The body of a request HTTP accepted (200)."""
        response = self.post(query, variables, token=token)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@dataclass
class Provided:
    """A server that checks tokens against ``provider``'s JWKS, which holds an RSA and an EC key."""

    api: Api
    provider: IdentityProvider
    rs256: str
    es256: str

    def token(self, payload: dict[str, Any] | None = None, *, kid: str | None = None) -> str:
        return self.provider.token(kid or self.rs256, payload)


@contextmanager
def provided_server(database_url: str, **jwt_settings: Any) -> Iterator[Provided]:
    provider = IdentityProvider()
    rs256, es256 = provider.add_key("RS256"), provider.add_key("ES256")
    settings = JwtSettings(issuer=ISSUER, audience=AUDIENCE, jwks_url=provider.jwks_url, **jwt_settings)
    try:
        with jwt_server(database_url, settings) as api:
            yield Provided(api, provider, rs256, es256)
    finally:
        provider.stop()


@pytest.fixture(scope="module")
def provided(database_url: str) -> Iterator[Provided]:
    # No leeway: a token expires when its exp says, so the client's refresh test need not wait.
    with provided_server(database_url, leeway_seconds=0) as running:
        yield running


@pytest.fixture
def fresh(database_url: str) -> Iterator[Provided]:
    """A server that has not fetched its provider's keys yet."""
    with provided_server(database_url) as running:
        yield running


@dataclass
class PemServer:
    """A server configured with ``key``'s public half as PEM instead of a JWKS."""

    api: Api
    key: PrivateKey
    alg: str

    def token(self, payload: dict[str, Any]) -> str:
        return jwt.encode(payload, self.key, algorithm=self.alg)


@pytest.fixture(scope="module")
def auth0(database_url: str) -> Iterator[PemServer]:
    """Auth0-style: an RSA key as PEM, role and tenant in namespaced claims."""
    key = rsa_key()
    settings = JwtSettings(
        issuer=ISSUER,
        audience=AUDIENCE,
        public_key=public_pem(key),
        role_claim=f"{NAMESPACE}role",
        tenant_claim=f"{NAMESPACE}tenant",
    )
    with jwt_server(database_url, settings) as api:
        yield PemServer(api, key, "RS256")


@pytest.fixture(scope="module")
def keycloak(database_url: str) -> Iterator[PemServer]:
    """Keycloak-style: an EC key as PEM, roles in ``realm_access.roles``; two requests a second."""
    key = ec.generate_private_key(ec.SECP256R1())
    settings = JwtSettings(
        issuer=ISSUER, audience=AUDIENCE, public_key=public_pem(key), role_claim="realm_access.roles"
    )
    with jwt_server(database_url, settings, Limits(rate_per_second=2, rate_burst=2)) as api:
        yield PemServer(api, key, "ES256")


def session_of(api: Api, session_id: str, token: str) -> dict[str, Any] | None:
    session: dict[str, Any] | None = data_of(api.graphql(READ_SESSION, {"s": session_id}, token=token))[
        "session"
    ]
    return session


def refused(response: httpx.Response, status: int, code: str) -> str:
    """Checks an HTTP refusal with a GraphQL error body; returns its message."""
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == code, error
    message: str = error["message"]
    return message


def unauthenticated(response: httpx.Response) -> str:
    assert response.headers.get("www-authenticate", "").startswith("Bearer"), response.headers
    return refused(response, 401, "UNAUTHENTICATED")


# Roles


def test_a_writer_token_creates_a_session_and_a_reader_token_cannot(provided: Provided) -> None:
    writer = provided.token(claims(role="writer"))
    reader = provided.token(claims(role="reader"))
    written, attempted = unique("s"), unique("s")

    created = data_of(provided.api.graphql(CREATE_SESSION, {"s": written}, token=writer))
    body = provided.api.graphql(CREATE_SESSION, {"s": attempted}, token=reader)

    assert created == {"createSession": {"sessionId": written, "tenant": "default"}}
    assert "writer" in assert_error(body, "FORBIDDEN")["message"]
    assert session_of(provided.api, written, reader) == {"sessionId": written, "tenant": "default"}
    assert session_of(provided.api, attempted, writer) is None


def test_an_admin_token_deletes_and_a_writer_token_cannot(provided: Provided) -> None:
    writer = provided.token(claims(role="writer"))
    admin = provided.token(claims(role="admin"))
    session_id = unique("s")
    data_of(provided.api.graphql(CREATE_SESSION, {"s": session_id}, token=writer))

    assert_error(provided.api.graphql(DELETE_SESSION, {"s": session_id}, token=writer), "FORBIDDEN")
    assert session_of(provided.api, session_id, writer) is not None
    assert data_of(provided.api.graphql(DELETE_SESSION, {"s": session_id}, token=admin)) == {
        "deleteSession": True
    }
    assert session_of(provided.api, session_id, writer) is None


def test_an_es256_token_from_the_jwks_works(provided: Provided) -> None:
    token = provided.token(claims(role="writer"), kid=provided.es256)
    session_id = unique("s")

    data_of(provided.api.graphql(CREATE_SESSION, {"s": session_id}, token=token))

    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    assert session_of(provided.api, session_id, token) is not None


def test_a_role_list_grants_its_highest_known_role(provided: Provided) -> None:
    session_id = unique("s")
    data_of(provided.api.graphql(CREATE_SESSION, {"s": session_id}, token=provided.token()))
    reader = provided.token(claims(role=["offline_access", "reader"]))
    admin = provided.token(claims(role=["reader", "superuser", "admin", "writer"]))

    assert_error(provided.api.graphql(DELETE_SESSION, {"s": session_id}, token=reader), "FORBIDDEN")
    assert data_of(provided.api.graphql(DELETE_SESSION, {"s": session_id}, token=admin)) == {
        "deleteSession": True
    }


@pytest.mark.parametrize("role", ["superuser", ["offline_access"], [], None, 7], ids=repr)
def test_a_token_without_a_known_role_is_http_403_forbidden(provided: Provided, role: Any) -> None:
    session_id = unique("s")

    response = provided.api.post(CREATE_SESSION, {"s": session_id}, token=provided.token(claims(role=role)))

    assert "'role' claim" in refused(response, 403, "FORBIDDEN")
    assert session_of(provided.api, session_id, provided.token()) is None


def test_a_namespaced_role_claim_is_found_by_its_whole_name(auth0: PemServer) -> None:
    admin = auth0.token(claims(role=None) | {f"{NAMESPACE}role": "admin", f"{NAMESPACE}tenant": "acme"})
    session_id = unique("s")

    created = data_of(auth0.api.graphql(CREATE_SESSION, {"s": session_id}, token=admin))
    deleted = data_of(auth0.api.graphql(DELETE_SESSION, {"s": session_id}, token=admin))

    assert created == {"createSession": {"sessionId": session_id, "tenant": "acme"}}
    assert deleted == {"deleteSession": True}


def test_a_nested_role_claim_is_read_by_its_dotted_path(keycloak: PemServer) -> None:
    writer = keycloak.token(claims(role=None, realm_access={"roles": ["offline_access", "writer"]}))
    reader = keycloak.token(claims(role=None, realm_access={"roles": ["reader", "uma_authorization"]}))
    roleless = keycloak.token(claims(role="admin", realm_access={"roles": ["offline_access"]}))
    session_id = unique("s")

    data_of(keycloak.api.graphql(CREATE_SESSION, {"s": session_id}, token=writer))

    assert session_of(keycloak.api, session_id, reader) is not None
    assert_error(keycloak.api.graphql(CREATE_SESSION, {"s": unique("s")}, token=reader), "FORBIDDEN")
    refused(keycloak.api.post(READ_SESSION, {"s": session_id}, token=roleless), 403, "FORBIDDEN")


# Refused tokens


def signed_by_another_key(provided: Provided) -> str:
    return jwt.encode(claims(), rsa_key(), algorithm="RS256", headers={"kid": provided.rs256})


def signed_with_the_public_pem_as_hmac_secret(provided: Provided) -> str:
    key, _ = provided.provider.keys[provided.rs256]
    return hand_signed(
        {"alg": "HS256", "typ": "JWT", "kid": provided.rs256}, claims(), public_pem(key).encode()
    )


def ec_signature_under_the_rsa_kid(provided: Provided) -> str:
    key, _ = provided.provider.keys[provided.es256]
    return jwt.encode(claims(), key, algorithm="ES256", headers={"kid": provided.rs256})


def p384_signature_under_the_p256_kid(provided: Provided) -> str:
    key = ec.generate_private_key(ec.SECP384R1())
    return jwt.encode(claims(), key, algorithm="ES384", headers={"kid": provided.es256})


def carrying_its_own_key(provided: Provided) -> str:
    """Signed by the caller's own key, which the header offers (``jwk``, ``jku``) under a real kid."""
    key = rsa_key()
    header = {
        "kid": provided.rs256,
        "jwk": RSAAlgorithm.to_jwk(key.public_key(), as_dict=True),
        "jku": "http://127.0.0.1:9/jwks.json",
    }
    return jwt.encode(claims(role="admin"), key, algorithm="RS256", headers=header)


REFUSED_TOKENS: dict[str, tuple[Callable[[Provided], str], str]] = {
    "expired": (lambda p: p.token(claims(iat=int(time.time()) - 600, lifetime=-120)), "expired"),
    "not-yet-valid": (lambda p: p.token(claims(nbf=int(time.time()) + 120)), "not yet valid"),
    "wrong-audience": (lambda p: p.token(claims(aud="session-graph")), "audience"),
    "audience-list-without-ours": (lambda p: p.token(claims(aud=["billing", "reports"])), "audience"),
    # A prefix of the real issuer: a substring match (PyJWT 2.10.0's CVE-2024-53861) would pass it.
    "wrong-issuer": (lambda p: p.token(claims(iss=ISSUER[:-1])), "issuer"),
    "bad-signature": (signed_by_another_key, "signature"),
    "key-in-header": (carrying_its_own_key, "signature"),
    "missing-exp": (lambda p: p.token(claims(exp=None)), '"exp"'),
    "missing-sub": (lambda p: p.token(claims(sub=None)), '"sub"'),
    "alg-none": (lambda p: hand_signed({"alg": "none", "kid": p.rs256}, claims(), None), "alg"),
    "hs256-with-public-pem": (signed_with_the_public_pem_as_hmac_secret, "alg"),
    "ec-signature-under-rsa-kid": (ec_signature_under_the_rsa_kid, "alg"),
    "p384-signature-under-p256-kid": (p384_signature_under_the_p256_kid, "curve"),
    "not-a-jwt": (lambda p: "definitely-not-a-jwt", "malformed"),
}


@pytest.mark.parametrize(
    "authorization", [None, "Bearer sgq_0123456789abcdef_" + "A" * 43, "Basic dXNlcjpwYXNz"], ids=repr
)
def test_a_jwt_server_without_api_keys_is_not_open(provided: Provided, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    session_id = unique("s")

    response = provided.api.http.post(
        "/graphql", json={"query": CREATE_SESSION, "variables": {"s": session_id}}, headers=headers
    )

    unauthenticated(response)
    assert session_of(provided.api, session_id, provided.token()) is None


@pytest.mark.parametrize("case", REFUSED_TOKENS)
def test_a_refused_token_is_http_401_with_a_bearer_challenge_saying_why(
    provided: Provided, case: str
) -> None:
    make, reason = REFUSED_TOKENS[case]
    token = make(provided)
    session_id = unique("s")

    response = provided.api.post(CREATE_SESSION, {"s": session_id}, token=token)

    message = unauthenticated(response)
    assert reason in message.lower()
    signature = token.rsplit(".", 1)[-1]
    assert token not in response.text
    assert not signature or signature not in response.text
    assert session_of(provided.api, session_id, provided.token()) is None


def test_hs256_signed_with_the_configured_public_pem_is_refused(auth0: PemServer) -> None:
    """The classic algorithm confusion: the server's own public key used as an HMAC secret."""
    payload = claims(role=None) | {f"{NAMESPACE}role": "admin"}
    pem = public_pem(auth0.key).encode()
    forged = [
        hand_signed({"alg": "HS256", "typ": "JWT"}, payload, pem),
        hand_signed({"alg": "HS256", "typ": "JWT"}, payload, pem.strip()),
    ]

    for token in forged:
        assert "alg" in unauthenticated(auth0.api.post(READ_SESSION, {"s": "x"}, token=token))
    assert auth0.api.post(READ_SESSION, {"s": "x"}, token=auth0.token(payload)).status_code == 200


def test_a_token_signed_for_another_key_type_than_the_pem_is_401(auth0: PemServer) -> None:
    payload = claims(role=None) | {f"{NAMESPACE}role": "admin"}
    token = jwt.encode(payload, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")

    assert "alg" in unauthenticated(auth0.api.post(READ_SESSION, {"s": "x"}, token=token))


# Tenants


def test_a_tenant_claim_binds_the_token_to_its_tenant(provided: Provided) -> None:
    acme_name, globex_name = unique("acme"), unique("globex")
    acme = provided.token(claims(tenant=acme_name))
    globex = provided.token(claims(tenant=globex_name))
    shared, acme_only = unique("s"), unique("s")

    for token, session_id in [(acme, shared), (globex, shared), (acme, acme_only)]:
        data_of(provided.api.graphql(CREATE_SESSION, {"s": session_id}, token=token))

    assert session_of(provided.api, shared, acme) == {"sessionId": shared, "tenant": acme_name}
    assert session_of(provided.api, shared, globex) == {"sessionId": shared, "tenant": globex_name}
    assert session_of(provided.api, acme_only, globex) is None
    listed = {
        name: data_of(provided.api.graphql(LIST_SESSIONS, token=token))["sessions"]["nodes"]
        for name, token in [(acme_name, acme), (globex_name, globex)]
    }
    assert sorted(node["sessionId"] for node in listed[acme_name]) == sorted([shared, acme_only])
    assert listed[globex_name] == [{"sessionId": shared, "tenant": globex_name}]
    assert {node["tenant"] for node in listed[acme_name]} == {acme_name}


def test_a_token_without_a_tenant_claim_acts_in_the_default_tenant(provided: Provided) -> None:
    tenant_name = unique("acme")
    session_id = unique("s")
    data_of(
        provided.api.graphql(
            CREATE_SESSION, {"s": session_id}, token=provided.token(claims(tenant=tenant_name))
        )
    )
    untenanted = provided.token(claims())

    created = data_of(provided.api.graphql(CREATE_SESSION, {"s": unique("s")}, token=untenanted))
    listed = data_of(provided.api.graphql(LIST_SESSIONS, token=untenanted))["sessions"]["nodes"]

    assert created["createSession"]["tenant"] == "default"
    assert session_of(provided.api, session_id, untenanted) is None
    assert created["createSession"] in listed
    assert {node["tenant"] for node in listed} == {"default"}


def test_a_star_tenant_claim_lists_every_tenant(provided: Provided) -> None:
    acme_name, globex_name = unique("acme"), unique("globex")
    session_id = unique("s")
    for name in (acme_name, globex_name):
        data_of(
            provided.api.graphql(CREATE_SESSION, {"s": session_id}, token=provided.token(claims(tenant=name)))
        )
    everywhere = provided.token(claims(role="reader", tenant="*"))

    nodes = data_of(provided.api.graphql(LIST_SESSIONS, token=everywhere))["sessions"]["nodes"]

    assert {node["tenant"] for node in nodes if node["sessionId"] == session_id} == {acme_name, globex_name}
    assert session_of(provided.api, session_id, provided.token(claims(role="reader"))) is None


@pytest.mark.parametrize(
    "tenant", ["two words", "", "-leading-dash", "x" * 65, 42, ["acme"], {"id": "acme"}], ids=repr
)
def test_an_invalid_tenant_claim_is_http_401(provided: Provided, tenant: Any) -> None:
    token = provided.token(claims(tenant=tenant))

    assert "'tenant' claim" in unauthenticated(provided.api.post(LIST_SESSIONS, token=token))


# Audit and rate limits


def test_the_audit_log_records_a_jwt_caller_as_jwt_and_its_subject(provided: Provided) -> None:
    session_id = unique("s")
    subject = unique("ops")
    admin = provided.token(claims(role="admin", sub=subject))
    data_of(provided.api.graphql(CREATE_SESSION, {"s": session_id}, token=provided.token()))
    data_of(provided.api.graphql(DELETE_SESSION, {"s": session_id}, token=admin))

    body = provided.api.graphql(
        "query($s: String!) { auditEvents(sessionId: $s) { nodes { actor actorRole action } } }",
        {"s": session_id},
        token=admin,
    )

    assert data_of(body)["auditEvents"]["nodes"] == [
        {"actor": f"jwt:{subject}", "actorRole": "admin", "action": "deleteSession"}
    ]


def test_tokens_with_the_same_subject_share_one_rate_limit_bucket(keycloak: PemServer) -> None:
    subject = unique("agent")
    reader = {"realm_access": {"roles": ["reader"]}}
    first, second = (keycloak.token(claims(sub=subject, role=None) | reader) for _ in range(2))
    assert first != second

    answers = [keycloak.api.post(LIST_SESSIONS, token=token) for token in (first, second, first)]
    other = keycloak.api.post(LIST_SESSIONS, token=keycloak.token(claims(role=None) | reader))

    assert [answer.status_code for answer in answers[:2]] == [200, 200]
    refused(answers[2], 429, "RATE_LIMITED")
    assert int(answers[2].headers["retry-after"]) >= 1
    assert 0 < answers[2].json()["errors"][0]["extensions"]["retryAfter"] <= 1
    assert other.status_code == 200, other.text


# The provider's keys


def test_the_jwks_is_fetched_once_and_cached(fresh: Provided) -> None:
    tokens = [fresh.token(claims(role="reader"), kid=kid) for kid in (fresh.rs256, fresh.es256) * 15]

    # Concurrent first requests wait for one fetch instead of each making their own.
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(
            pool.map(lambda token: fresh.api.post(LIST_SESSIONS, token=token).status_code, tokens)
        )
    statuses += [fresh.api.post(LIST_SESSIONS, token=token).status_code for token in tokens]

    assert statuses == [200] * 2 * len(tokens)
    assert fresh.provider.fetches == 1


def test_a_new_kid_after_the_provider_rotates_its_keys_is_fetched_and_accepted(
    fresh: Provided, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jwt_tokens, "MIN_REFETCH_SECONDS", 0.3)
    old = fresh.token(claims(role="reader"))
    assert fresh.api.post(LIST_SESSIONS, token=old).status_code == 200
    new_kid = fresh.provider.rotate()
    time.sleep(0.35)

    response = fresh.api.post(LIST_SESSIONS, token=fresh.token(claims(role="reader"), kid=new_kid))

    assert response.status_code == 200, response.text
    assert fresh.provider.fetches == 2
    # The old key is gone from the provider's set, so its tokens are refused from now on.
    assert "kid" in unauthenticated(fresh.api.post(LIST_SESSIONS, token=fresh.token(claims(role="reader"))))


def test_made_up_kids_fetch_the_jwks_at_most_every_min_refetch_seconds(
    fresh: Provided, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jwt_tokens, "MIN_REFETCH_SECONDS", 0.5)
    assert fresh.api.post(LIST_SESSIONS, token=fresh.token()).status_code == 200
    window = 1.6
    key, _ = fresh.provider.keys[fresh.rs256]

    started, sent = time.monotonic(), 0
    while time.monotonic() - started < window:
        forged = jwt.encode(claims(), key, algorithm="RS256", headers={"kid": unique("made-up")})
        unauthenticated(fresh.api.post(LIST_SESSIONS, token=forged))
        sent += 1

    refetches = fresh.provider.fetches - 1
    assert sent >= 20
    assert 1 <= refetches <= 1 + window / 0.5


def test_the_jwks_down_is_http_503_until_it_is_back(fresh: Provided, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jwt_tokens, "MIN_REFETCH_SECONDS", 0.3)
    fresh.provider.stop()
    token = fresh.token(claims(role="reader"))

    while_down = [fresh.api.post(LIST_SESSIONS, token=token) for _ in range(3)]
    fresh.provider.start()
    time.sleep(0.35)
    after = fresh.api.post(LIST_SESSIONS, token=token)

    for response in while_down:
        assert "keys could not be fetched" in refused(response, 503, "SERVICE_UNAVAILABLE")
    assert after.status_code == 200, after.text


def test_a_jwks_endpoint_answering_no_keys_is_http_503(
    fresh: Provided, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jwt_tokens, "MIN_REFETCH_SECONDS", 0.0)
    token = fresh.token(claims(role="reader"))
    answers = [
        (200, "text/html", b"<html>Sign in</html>"),
        (200, "application/json", b'{"keys": []}'),
        (200, "application/json", b'{"keys": [{"kty": "nonsense"}]}'),
        (200, "application/json", b"[1, 2]"),
        (502, "text/plain", b"Bad Gateway"),
    ]

    for answer in answers:
        fresh.provider.answer = answer
        response = fresh.api.post(LIST_SESSIONS, token=token)
        assert response.status_code == 503, (answer, response.status_code, response.text)
        refused(response, 503, "SERVICE_UNAVAILABLE")
    fresh.provider.answer = None
    assert fresh.api.post(LIST_SESSIONS, token=token).status_code == 200
    assert fresh.provider.fetches == len(answers) + 1


def test_cached_keys_keep_working_when_a_refresh_meets_an_outage(
    fresh: Provided, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jwt_tokens, "MIN_REFETCH_SECONDS", 0.2)
    monkeypatch.setattr(jwt_tokens, "JWKS_MAX_AGE_SECONDS", 0.3)
    token = fresh.token(claims(role="reader"))
    assert fresh.api.post(LIST_SESSIONS, token=token).status_code == 200
    fresh.provider.stop()
    time.sleep(0.35)

    known = [fresh.api.post(LIST_SESSIONS, token=token).status_code for _ in range(3)]
    unknown = fresh.api.post(LIST_SESSIONS, token=fresh.token(claims(), kid=fresh.provider.add_key()))

    assert known == [200, 200, 200]
    refused(unknown, 503, "SERVICE_UNAVAILABLE")


# The client


class Login:
    """A token provider as agents keep one: a cached JWT, replaced once its ``exp`` has passed.

    Its first token lives a second, and the request carrying it is slow to arrive (the provider
    waits out the token's life before handing it over), so that token expires in flight.
    """

    def __init__(self, provided: Provided) -> None:
        self.provided = provided
        self.subject = unique("agent")
        self.calls = 0
        self.issued: list[str] = []
        self.expires = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self.calls += 1
            if time.time() < self.expires:
                return self.issued[-1]
            first = not self.issued
            payload = claims(sub=self.subject, lifetime=1 if first else 300)
            self.issued.append(self.provided.token(payload))
            self.expires = payload["exp"]
            if first:
                time.sleep(self.expires - time.time() + 0.1)
            return self.issued[-1]


def test_the_client_with_a_token_provider_keeps_working_when_its_jwt_expires(provided: Provided) -> None:
    login = Login(provided)
    session_id = unique("s")

    with GraphQLSessionRepository(provided.api.server.url, token=login) as repository:
        created = repository.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
        assert (login.calls, len(login.issued)) == (2, 2)  # one refusal, then the fresh token
        read = repository.read_session(session_id)

    assert created.session_id == session_id
    assert read is not None and read.session_id == session_id
    assert (login.calls, len(login.issued)) == (3, 2)
    assert "expired" in unauthenticated(
        provided.api.post(READ_SESSION, {"s": session_id}, token=login.issued[0])
    )


def test_the_client_with_an_expired_fixed_jwt_raises_unauthenticated(provided: Provided) -> None:
    expired = provided.token(claims(iat=int(time.time()) - 600, lifetime=-60))

    with (
        GraphQLSessionRepository(provided.api.server.url, token=expired) as repository,
        pytest.raises(SessionUnauthenticatedError) as raised,
    ):
        repository.read_session(unique("s"))

    assert "expired" in str(raised.value)
    assert expired not in str(raised.value)


# Settings


JWKS_ENV = {
    "SESSION_GRAPHQL_JWT_ISSUER": ISSUER,
    "SESSION_GRAPHQL_JWT_AUDIENCE": AUDIENCE,
    "SESSION_GRAPHQL_JWT_JWKS_URL": "https://idp.test/.well-known/jwks.json",
}


def test_jwt_settings_are_read_from_the_environment() -> None:
    settings = JwtSettings.from_env(
        {
            **JWKS_ENV,
            "SESSION_GRAPHQL_JWT_ROLE_CLAIM": "realm_access.roles",
            "SESSION_GRAPHQL_JWT_TENANT_CLAIM": f"{NAMESPACE}tenant",
            "SESSION_GRAPHQL_JWT_ALGORITHMS": " RS256, ES256 ",
        }
    )

    assert settings == JwtSettings(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_url=JWKS_ENV["SESSION_GRAPHQL_JWT_JWKS_URL"],
        role_claim="realm_access.roles",
        tenant_claim=f"{NAMESPACE}tenant",
        algorithms=("RS256", "ES256"),
    )
    assert settings.enabled and not JwtSettings.from_env({}).enabled


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"SESSION_GRAPHQL_JWT_ALGORITHMS": "RS256,HS256"}, "HS256"),
        ({"SESSION_GRAPHQL_JWT_ALGORITHMS": "none"}, "none"),
        ({"SESSION_GRAPHQL_JWT_AUDIENCE": ""}, "SESSION_GRAPHQL_JWT_AUDIENCE"),
        ({"SESSION_GRAPHQL_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----"}, "exactly one"),
        ({"SESSION_GRAPHQL_JWT_JWKS_URL": ""}, "exactly one"),
        ({"SESSION_GRAPHQL_JWT_JWKS_URL": "file:///etc/jwks.json"}, "http"),
        ({"SESSION_GRAPHQL_JWT_JWKS_URL": "ftp://idp.test/jwks.json"}, "http"),
        ({"SESSION_GRAPHQL_JWT_JWKS_URL": "https://"}, "http"),
        ({"SESSION_GRAPHQL_JWT_ISSUER": ""}, "SESSION_GRAPHQL_JWT_ISSUER"),
    ],
    ids=[
        "hs256",
        "alg-none",
        "no-audience",
        "jwks-and-key",
        "neither",
        "file-url",
        "ftp-url",
        "url-without-host",
        "no-issuer",
    ],
)
def test_jwt_settings_from_the_environment_refuse_an_unsafe_or_half_configuration(
    changes: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        JwtSettings.from_env({**JWKS_ENV, **changes})

    assert named in str(raised.value)
    assert "\n" not in str(raised.value)


def unused_database() -> str:
    # create_app connects only when served; nothing listens here.
    return "postgresql+asyncpg://nobody@127.0.0.1:9/nothing"


@pytest.mark.parametrize(
    "public_key",
    [
        "not a key",
        "".join(public_pem(rsa_key()).splitlines()[1:-1]),  # the base64 body without its PEM armour
        rsa_key()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode(),
    ],
    ids=["text", "unarmoured", "private-key"],
)
def test_a_public_key_that_is_not_pem_makes_create_app_raise_a_one_line_settings_error(
    public_key: str,
) -> None:
    settings = Settings(
        database_url=unused_database(),
        jwt=JwtSettings(issuer=ISSUER, audience=AUDIENCE, public_key=public_key),
    )

    with pytest.raises(SettingsError) as raised:
        create_app(settings)

    assert "public key" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert "PRIVATE" not in str(raised.value)


@pytest.mark.parametrize(
    ("made", "named"),
    [
        ({"audience": AUDIENCE, "jwks_url": "https://idp.test/jwks.json"}, "SESSION_GRAPHQL_JWT_ISSUER"),
        ({"issuer": ISSUER, "jwks_url": "https://idp.test/jwks.json"}, "SESSION_GRAPHQL_JWT_AUDIENCE"),
        (
            {"issuer": ISSUER, "audience": AUDIENCE, "public_key": "PEM", "algorithms": ("RS256", "HS256")},
            "HS256",
        ),
        ({"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": "http:///jwks.json"}, "http"),
    ],
    ids=["no-issuer", "no-audience", "hs256", "url-without-host"],
)
def test_jwt_settings_made_in_code_are_refused_as_those_from_the_environment(
    made: dict[str, Any], named: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        JwtSettings(**made)

    assert named in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_public_key_that_none_of_the_algorithms_verifies_makes_create_app_raise() -> None:
    jwt_settings = JwtSettings(
        issuer=ISSUER, audience=AUDIENCE, public_key=public_pem(rsa_key()), algorithms=("ES256",)
    )

    with pytest.raises(SettingsError) as raised:
        create_app(Settings(database_url=unused_database(), jwt=jwt_settings))

    assert "SESSION_GRAPHQL_JWT_ALGORITHMS (ES256)" in str(raised.value)
    assert "\n" not in str(raised.value)
