"""From a request's headers to the caller it comes from and the tenant it acts in.

Runs before the body is read: a request without valid credentials is refused with HTTP 401 and
costs nothing more.
"""

from collections.abc import Mapping

from db.models import DEFAULT_TENANT
from db.tenancy import Scope
from graphql_api.auth.api_keys import KeyRing, looks_like_key
from graphql_api.auth.identity import OPEN_CALLER, TENANT_PATTERN, Caller
from graphql_api.auth.jwt import InvalidToken, JwtVerifier, KeysUnavailable, NoRole
from graphql_api.errors import UNAVAILABLE_MESSAGE, ErrorCode, Refusal

TENANT_HEADER = "x-tenant"
PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")
"""Headers a reverse proxy or load balancer adds to what it forwards."""
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="session-graphql"'}


def _unauthenticated(message: str) -> Refusal:
    return Refusal(401, ErrorCode.UNAUTHENTICATED, message, headers=_CHALLENGE)


class Authenticator:
    """API keys from ``keys``, JWTs from ``jwt`` when configured; open when neither exists.

    The server is open (every request an admin) only while no API key was ever made and no JWT
    verifier is configured; the first key made anywhere closes it on every replica within a
    key refresh. Revoking every key does not reopen it.
    """

    def __init__(self, keys: KeyRing, jwt: JwtVerifier | None, *, open_to_proxied: bool = False) -> None:
        self.keys = keys
        self.jwt = jwt
        self.open_to_proxied = open_to_proxied

    @property
    def open(self) -> bool:
        return self.jwt is None and self.keys.loaded and not self.keys.any_key_made

    async def caller(self, headers: Mapping[str, str]) -> Caller:
        """The caller, or a ``Refusal`` (401 without valid credentials)."""
        if not self.keys.loaded:
            # Until the keys are read, whether this server is even open is unknown.
            raise Refusal(503, ErrorCode.SERVICE_UNAVAILABLE, UNAVAILABLE_MESSAGE)
        authorization = headers.get("authorization")
        if authorization is None:
            if self.open and (self.open_to_proxied or not any(name in headers for name in PROXY_HEADERS)):
                return OPEN_CALLER
            if self.open:
                # Bound to loopback, an open server is only for this machine; a proxy forwarding to it
                # would open it to everyone the proxy serves (unless started with --insecure).
                raise _unauthenticated(
                    "This server has no API keys yet and answers only requests made on its own machine, "
                    "not through a proxy: make a key with `session-graphql token create`."
                )
            raise _unauthenticated("Credentials needed: send Authorization: Bearer <API key or JWT>.")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthenticated("The Authorization header must read 'Bearer <API key or JWT>'.")
        if looks_like_key(token):
            caller = await self.keys.caller_for(token)
            if caller is None:
                raise _unauthenticated("The API key is not valid: unknown, revoked or mistyped.")
            return caller
        if self.jwt is None:
            raise _unauthenticated("The bearer token is not an API key of this server.")
        try:
            return await self.jwt.caller_for(token)
        except InvalidToken as error:
            raise _unauthenticated(str(error)) from None
        except NoRole as error:
            raise Refusal(403, ErrorCode.FORBIDDEN, str(error)) from None
        except KeysUnavailable:
            raise Refusal(
                503, ErrorCode.SERVICE_UNAVAILABLE, "The identity provider's keys could not be fetched."
            ) from None


def scope_for(caller: Caller, requested_tenant: str | None) -> Scope:
    """The tenant a request acts in: the caller's own, or for a tenantless caller the one it names.

    A tenantless caller that names none lists every tenant and writes into the default one.
    """
    if requested_tenant is None:
        if caller.tenant is None:
            return Scope(DEFAULT_TENANT, all_tenants=True)
        return Scope(caller.tenant)
    if not TENANT_PATTERN.fullmatch(requested_tenant):
        raise Refusal(400, ErrorCode.BAD_REQUEST, "X-Tenant must be 1-64 letters, digits, '.', '_' or '-'.")
    if caller.tenant is not None and requested_tenant != caller.tenant:
        message = f"These credentials belong to tenant {caller.tenant!r} and act in no other."
        raise Refusal(403, ErrorCode.FORBIDDEN, message)
    return Scope(requested_tenant)
