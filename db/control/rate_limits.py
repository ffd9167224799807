"""Token buckets shared by every replica, one row per caller.

A replica does not ask for every request: it claims a handful of tokens at once and spends them
locally (see ``graphql_api.auth.rate_limits``), so the shared bucket costs one statement per claim.
"""

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# One statement: refill the bucket for the time since its last claim (up to the burst), grant as
# many whole tokens as asked and available, and keep the rest. A bucket seen for the first time
# starts full. SET expressions all read the row as it was, hence the repeated refill.
_WANT, _RATE, _BURST = "CAST(:want AS float8)", "CAST(:rate AS float8)", "CAST(:burst AS float8)"
_REFILLED = f"least({_BURST}, b.tokens + {_RATE} * greatest(0, extract(epoch FROM now() - b.refilled_at)))"
_GRANT = f"least({_WANT}, floor({_REFILLED}))"
_CLAIM = text(
    f"""
    INSERT INTO rate_limit_buckets AS b (bucket, tokens, granted, refilled_at)
    VALUES (:bucket, {_BURST} - least({_WANT}, {_BURST}), least({_WANT}, {_BURST}), now())
    ON CONFLICT (bucket) DO UPDATE
    SET granted = {_GRANT}, tokens = {_REFILLED} - {_GRANT}, refilled_at = now()
    RETURNING granted, tokens
    """
)
_FORGET_IDLE = text("DELETE FROM rate_limit_buckets WHERE refilled_at < now() - make_interval(secs => :idle)")


@dataclass(frozen=True, slots=True)
class Grant:
    tokens: int
    """Tokens granted now (0: none available)."""
    left: float
    """Tokens left in the shared bucket after this claim."""


async def claim(conn: AsyncConnection, bucket: str, *, want: int, rate: float, burst: int) -> Grant:
    row = (
        await conn.execute(
            _CLAIM, {"bucket": bucket, "want": float(want), "rate": rate, "burst": float(burst)}
        )
    ).one()
    return Grant(tokens=int(row.granted), left=float(row.tokens))


async def forget_idle(conn: AsyncConnection, idle_seconds: float) -> None:
    """Drops buckets idle long enough to be full again: they would start full anyway."""
    await conn.execute(_FORGET_IDLE, {"idle": idle_seconds})
