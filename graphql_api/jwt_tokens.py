"""Bearer JWTs from an identity provider (Cognito, Auth0, Keycloak, Entra), verified with PyJWT.

Signing keys come from a PEM public key or the provider's JWKS, fetched off the event loop and
cached: an unknown key id (the provider rotated its keys) fetches the set again, at most every
``MIN_REFETCH_SECONDS``, so tokens with made-up key ids cannot make us hammer the provider.
"""

import asyncio
import hashlib
import logging
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from db.models import DEFAULT_TENANT
from graphql_api.identity import ALL_TENANTS, TENANT_PATTERN, Caller, Role
from graphql_api.settings import JwtSettings, SettingsError

logger = logging.getLogger(__name__)

MIN_REFETCH_SECONDS = 10.0
JWKS_MAX_AGE_SECONDS = 300.0
JWKS_TIMEOUT_SECONDS = 5.0


class InvalidToken(Exception):
    """The token is not one this server accepts; the message says why, for the caller."""


class NoRole(Exception):
    """The token is valid but grants none of our roles."""


class KeysUnavailable(Exception):
    """The identity provider's keys could not be fetched."""


def claim(claims: dict[str, Any], name: str) -> Any:
    """A claim by its whole name, else by a dotted path into nested objects."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def role_from(value: Any) -> Role | None:
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    known = {role.value for role in Role}
    roles = [Role(name) for name in names if isinstance(name, str) and name in known]
    return max(roles, key=lambda role: role.rank, default=None)


class JwtVerifier:
    def __init__(self, settings: JwtSettings) -> None:
        assert settings.enabled
        self._settings = settings
        self._static_key: Any = None
        if settings.public_key is not None:
            try:
                self._static_key = load_pem_public_key(settings.public_key.encode())
            except (ValueError, TypeError) as error:
                raise SettingsError(f"the JWT public key is not a PEM public key: {error}") from None
        self._jwks_client = (
            jwt.PyJWKClient(
                settings.jwks_url, cache_jwk_set=False, cache_keys=False, timeout=JWKS_TIMEOUT_SECONDS
            )
            if settings.jwks_url is not None
            else None
        )
        self._jwks: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -float("inf")
        self._fetching: asyncio.Lock | None = None

    async def _fetch(self) -> None:
        assert self._jwks_client is not None
        if self._fetching is None:
            self._fetching = asyncio.Lock()
        async with self._fetching:
            if time.monotonic() - self._fetched_at < MIN_REFETCH_SECONDS:
                return  # someone fetched while we waited
            try:
                key_set = await asyncio.to_thread(self._jwks_client.get_jwk_set, True)
            except jwt.PyJWKClientError as error:
                raise KeysUnavailable(str(error)) from error
            finally:
                self._fetched_at = time.monotonic()
            self._jwks = {key.key_id: key for key in key_set.keys if key.key_id is not None}

    async def _signing_key(self, token: str) -> Any:
        if self._static_key is not None:
            return self._static_key
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as error:
            raise InvalidToken(f"malformed JWT: {error}") from None
        age = time.monotonic() - self._fetched_at
        if age > JWKS_MAX_AGE_SECONDS or (kid not in self._jwks and age >= MIN_REFETCH_SECONDS):
            await self._fetch()
        if kid not in self._jwks:
            raise InvalidToken("the JWT's signing key (kid) is not among the identity provider's keys")
        return self._jwks[kid].key

    async def caller_for(self, token: str) -> Caller:
        """The caller the token names; raises ``InvalidToken``, ``NoRole`` or ``KeysUnavailable``."""
        settings = self._settings
        key = await self._signing_key(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(settings.algorithms),
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.InvalidTokenError as error:
            raise InvalidToken(f"JWT refused: {error}") from None
        role = role_from(claim(claims, settings.role_claim))
        if role is None:
            raise NoRole(f"the JWT grants no role of this server in its {settings.role_claim!r} claim")
        tenant_claim = claim(claims, settings.tenant_claim)
        tenant: str | None
        if tenant_claim is None:
            tenant = DEFAULT_TENANT
        elif tenant_claim == ALL_TENANTS:
            tenant = None
        elif isinstance(tenant_claim, str) and TENANT_PATTERN.fullmatch(tenant_claim):
            tenant = tenant_claim
        else:
            raise InvalidToken(f"the JWT's {settings.tenant_claim!r} claim is not a tenant name")
        subject = str(claims["sub"])
        bucket = hashlib.sha256(f"{claims['iss']}\0{subject}".encode()).hexdigest()[:32]
        return Caller(
            role=role, tenant=tenant, name=f"jwt:{subject}"[:200], kind="jwt", rate_bucket=f"jwt:{bucket}"
        )
