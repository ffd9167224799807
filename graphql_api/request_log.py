"""One line per request: which operation, for whom, how it ended and how long it took.

A readable line by default, JSON with ``SESSION_GRAPHQL_LOG_FORMAT=json``. It names the caller by
its key's label (or a JWT's subject) and never carries message content, variables or credentials:
the operation's name is the only part of the body it repeats.
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

logger = logging.getLogger("session_graphql.requests")

MOST_OPERATION_CHARS = 100


@dataclass(slots=True)
class RequestLine:
    """Filled in as the request goes: by the endpoint, the rate limiter's refusal, the executor."""

    request_id: str
    upstream_id: str | None
    method: str
    started: float = field(default_factory=time.perf_counter)
    operation: str | None = None
    outcome: str = "ok"
    tenant: str | None = None
    caller: str | None = None

    def named(self, operation: str | None) -> None:
        self.operation = None if operation is None else operation[:MOST_OPERATION_CHARS]


def write(line: RequestLine, status: int, seconds: float, log_format: str) -> None:
    """The line of a request that took ``seconds`` (the same figure its metrics record)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    duration_ms = round(seconds * 1000, 3)
    if log_format == "json":
        fields = {
            "time": datetime.now(UTC).isoformat(),
            "request_id": line.request_id,
            "upstream_request_id": line.upstream_id,
            "method": line.method,
            "operation": line.operation,
            "outcome": line.outcome,
            "status": status,
            "duration_ms": duration_ms,
            "tenant": line.tenant,
            "caller": line.caller,
        }
        logger.info(orjson.dumps(fields).decode())
        return
    logger.info(
        "%s %s %s %s %d %.1f ms tenant=%s caller=%r",
        line.request_id if line.upstream_id is None else f"{line.request_id} (upstream {line.upstream_id})",
        line.method,
        line.operation or "-",
        line.outcome,
        status,
        duration_ms,
        line.tenant or "-",
        line.caller or "-",
    )
