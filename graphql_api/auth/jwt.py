"""Bearer JWTs from an identity provider (Cognito, Auth0, Keycloak, Entra), verified with PyJWT.

Signing keys come from a PEM public key or the provider's JWKS, fetched off the event loop and
cached: an unknown key id (the provider rotated its keys) fetches the set again, at most every
``MIN_REFETCH_SECONDS``, so tokens with made-up key ids cannot make us hammer the provider.
While the provider is out, the keys already held keep working; a token naming any other key is
answered SERVICE_UNAVAILABLE, not refused, since it may name the provider's new key.
"""

import asyncio
import hashlib
import logging
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from db.models import DEFAULT_TENANT
from graphql_api.auth.identity import ALL_TENANTS, TENANT_PATTERN, Caller, Role
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


def algorithms_for(key: Any, allowed: tuple[str, ...]) -> list[str]:
    """Those of ``allowed`` that verify with ``key``'s type.

    Offered another type's algorithm (an ES256 token naming an RSA key's kid), PyJWT raises
    TypeError rather than a token error; offering only these makes that an ordinary refusal.
    """
    if isinstance(key, RSAPublicKey):
        family: tuple[str, ...] = ("RS", "PS")
    elif isinstance(key, EllipticCurvePublicKey):
        family = ("ES",)
    elif isinstance(key, (Ed25519PublicKey, Ed448PublicKey)):
        family = ("EdDSA",)
    else:
        return []
    return [name for name in allowed if name.startswith(family)]


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
            if not algorithms_for(self._static_key, settings.algorithms):
                raise SettingsError(
                    "the JWT public key verifies none of SESSION_GRAPHQL_JWT_ALGORITHMS "
                    f"({', '.join(settings.algorithms)})"
                )
        self._jwks_client = (
            jwt.PyJWKClient(
                settings.jwks_url, cache_jwk_set=False, cache_keys=False, timeout=JWKS_TIMEOUT_SECONDS
            )
            if settings.jwks_url is not None
            else None
        )
        self._jwks: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -float("inf")
        self._fetch_failed = False
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
            except (jwt.PyJWKClientError, jwt.PyJWKSetError, OSError, ValueError) as error:
                # Unreachable, an error status, not JSON (a login page), or no usable key in it.
                self._fetch_failed = True
                logger.warning("cannot fetch the JWKS from %s: %s", self._settings.jwks_url, error)
                raise KeysUnavailable(str(error)) from error
            finally:
                self._fetched_at = time.monotonic()
            self._fetch_failed = False
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
            try:
                await self._fetch()
            except KeysUnavailable:
                if kid not in self._jwks:
                    raise
                # A key we hold stays good while the provider is out.
        if kid not in self._jwks:
            if self._fetch_failed:
                # Without the provider's current keys, an unknown kid may be its new key, not a forgery.
                raise KeysUnavailable("the identity provider's keys could not be fetched")
            raise InvalidToken("the JWT's signing key (kid) is not among the identity provider's keys")
        return self._jwks[kid].key

    async def caller_for(self, token: str) -> Caller:
        """The caller the token names; raises ``InvalidToken``, ``NoRole`` or ``KeysUnavailable``."""
        settings = self._settings
        key = await self._signing_key(token)
        algorithms = algorithms_for(key, settings.algorithms)
        if not algorithms:
            raise InvalidToken("the JWT's signing key is of a type this server does not verify with")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as error:  # also InvalidKeyError: an EC key of another curve than the alg's
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
