"""Telling "the database is away" from every other failure, and saying so once per outage."""

import logging

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

logger = logging.getLogger("db.availability")

QUERY_CANCELED = "57014"
"""statement_timeout (or a cancel request): the query was too slow, the database is fine."""

# 08: connection exceptions; 57: operator intervention (shutting down, starting up: 57P01-57P03);
# 53: insufficient resources (too many connections, out of memory or disk).
_UNAVAILABLE_CLASSES = ("08", "57", "53")


def sqlstate_of(error: BaseException) -> str | None:
    """The SQLSTATE of a database error, wrapped by SQLAlchemy or not."""
    link: BaseException | None = error
    seen: set[int] = set()
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        orig = getattr(link, "orig", None)
        for candidate in (link, orig):
            state = getattr(candidate, "sqlstate", None)
            if isinstance(state, str):
                return state
        link = link.__cause__
    return None


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database could not do the work now (so trying later may help).

    OSError covers refused and reset connections, a missing unix socket (a stopped embedded
    database), unknown hosts and timeouts.
    """
    state = sqlstate_of(error)
    if state == QUERY_CANCELED:
        return False
    if state is not None and state[:2] in _UNAVAILABLE_CLASSES:
        return True
    if isinstance(error, (OperationalError, InterfaceError, PoolTimeoutError, OSError)):
        return True
    if isinstance(error, DBAPIError):
        return error.connection_invalidated or isinstance(error.orig, (OSError, ConnectionError))
    return isinstance(error, ConnectionError)


class OutageLog:
    """Logs the first failure of an outage at WARNING and its end at INFO, nothing in between.

    Replicas each keep their own; requests failing during the outage are answered
    SERVICE_UNAVAILABLE without a traceback each. ``what`` names the database in the log, and
    ``meanwhile`` says what the server does until it returns.
    """

    def __init__(
        self, what: str = "database", meanwhile: str = "answering SERVICE_UNAVAILABLE until it returns"
    ) -> None:
        self.down = False
        self.what = what
        self.meanwhile = meanwhile

    def failed(self, error: BaseException) -> None:
        if not self.down:
            self.down = True
            logger.warning(
                "%s unavailable (%s: %s); %s",
                self.what,
                type(error).__name__,
                str(error).splitlines()[0] if str(error) else "",
                self.meanwhile,
            )

    def succeeded(self) -> None:
        if self.down:
            self.down = False
            logger.info("%s available again", self.what)
