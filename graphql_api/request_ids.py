"""Every request's id: in the ``X-Request-ID`` response header, on its errors, in the server's log.

The id is always the server's own: one a client sent could name another request in the audit log.
An id a proxy in front gave the request is kept beside it, for the log.
"""

import re
import secrets
from contextvars import ContextVar

HEADER = "x-request-id"
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{1,64}")

current: ContextVar[str | None] = ContextVar("request_id", default=None)
upstream: ContextVar[str | None] = ContextVar("upstream_request_id", default=None)


def new_request_id() -> str:
    return secrets.token_hex(8)


def upstream_id(incoming: str | None) -> str | None:
    """The id a proxy in front gave the request, if it looks like one (it only ever reaches the log)."""
    return incoming if incoming is not None and _ACCEPTED.fullmatch(incoming) else None


def described() -> str:
    """The current request for a log line: its id, and the proxy's when there is one."""
    own = current.get() or "-"
    theirs = upstream.get()
    return own if theirs is None else f"{own} (upstream {theirs})"
