"""What PostgreSQL (or the driver) refused on a write, as the ``db.errors`` a caller reports."""

from typing import NoReturn

from sqlalchemy.exc import DBAPIError, StatementError

from db.errors import InvalidDataError, NotFoundError

FOREIGN_KEY_VIOLATION = "23503"
UNPAIRED_SURROGATE = "text must be valid Unicode (it has an unpaired surrogate)"
MAX_DETAIL = 200


def raise_for(error: Exception, missing_parent: str) -> NoReturn:
    """``NotFoundError(missing_parent)`` for a missing parent, ``InvalidDataError`` for a value the
    database cannot take, and ``error`` itself for anything else."""
    if isinstance(error, DBAPIError):
        state = getattr(error.orig, "sqlstate", None)
        if state == FOREIGN_KEY_VIOLATION:
            raise NotFoundError(missing_parent) from error
        if state is not None and state[:2] in ("22", "23"):
            # Class 22 is "data exception" (bad JSON escape, NUL in text, out of range); class 23
            # "integrity constraint violation" other than the parent key: both are the input's fault.
            detail = str(getattr(error.orig, "args", [""])[0] or error.orig).splitlines()[0]
            if "surrogates not allowed" in detail:
                # The driver quotes the start of the offending value; say what is wrong instead.
                raise InvalidDataError(UNPAIRED_SURROGATE) from error
            raise InvalidDataError(detail.split(": ", 1)[-1][:MAX_DETAIL]) from error
        raise error
    if isinstance(error, StatementError):
        if isinstance(error.orig, UnicodeError):
            raise InvalidDataError(UNPAIRED_SURROGATE) from error
        if isinstance(error.orig, ValueError):
            raise InvalidDataError(f"value cannot be stored as JSON: {error.orig}") from error
    if isinstance(error, UnicodeError):
        raise InvalidDataError(UNPAIRED_SURROGATE) from error
    if isinstance(error, ValueError):
        raise InvalidDataError(f"value cannot be stored as JSON: {error}") from error
    raise error
