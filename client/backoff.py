"""How long to wait before sending a request again."""

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``base``, then twice as long each time, at most ``cap`` seconds.

    Each wait is drawn from its upper half, so agents that lost the server together do not all
    come back in the same instant. A wait the server asked for (RATE_LIMITED's ``retryAfter``) is
    kept as asked, up to ``longest_asked`` seconds.
    """

    retries: int
    base: float
    cap: float = 2.0
    longest_asked: float = 30.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must not be negative, got {self.retries}")
        if self.base < 0:
            raise ValueError(f"backoff must not be negative, got {self.base}")

    def delay(self, attempts: int, asked: float | None = None) -> float | None:
        """Seconds to wait after ``attempts`` failed attempts, or None when no retry is left.

        ``asked`` is how long the server asked the client to wait. Asked for more than
        ``longest_asked``, it is None at once: the server would refuse an earlier resend, and
        blocking the caller longer than its own timeout is worse than failing.
        """
        if attempts > self.retries:
            return None
        if asked is not None:
            return asked if asked <= self.longest_asked else None
        # The exponent stops growing long after the cap is reached: 2 ** 1024 is no float.
        longest = min(self.cap, self.base * 2 ** min(attempts - 1, 64))
        return random.uniform(longest / 2, longest)
