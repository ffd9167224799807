"""Every request's id: in the ``X-Request-ID`` response header, on its errors, in the server's log."""

import re
import secrets
from contextvars import ContextVar

HEADER = "x-request-id"
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{8,64}")

current: ContextVar[str | None] = ContextVar("request_id", default=None)


def request_id_for(incoming: str | None) -> str:
    """The id a proxy in front already gave the request, if it looks like one; else a new one."""
    if incoming is not None and _ACCEPTED.fullmatch(incoming):
        return incoming
    return secrets.token_hex(8)
