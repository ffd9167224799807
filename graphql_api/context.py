"""What every resolver gets through ``info.context``."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from strawberry.types import Info as StrawberryInfo

from db.engine import Database
from db.records import Actor
from db.tenancy import Scope
from graphql_api.auth.identity import OPEN_CALLER, Caller
from graphql_api.auth.rate_limits import HeavyRequests
from graphql_api.guards.answer_budget import AnswerBudget
from graphql_api.loaders import Loaders, RowBudget, create_loaders
from graphql_api.read_routing import ReadFrom
from graphql_api.settings import Limits, RetentionSettings

if TYPE_CHECKING:
    from graphql_api.live.connection import LiveConnection
    from graphql_api.live.streams import Live

OPEN_SCOPE = Scope(all_tenants=True)
T = TypeVar("T")


@dataclass
class Context:
    """Per request: the database, who calls and in which tenant, the limits, and the request's loaders."""

    db: Database
    """Where this request reads: the primary, or the read replica once ``read_from_replica`` chose it."""
    caller: Caller = OPEN_CALLER
    scope: Scope = OPEN_SCOPE
    limits: Limits = field(default_factory=Limits)
    request: Request | None = None
    request_id: str | None = None
    operation_name: str | None = None
    """The operation that runs (set as it starts), for the request log."""
    body_bytes: int = 0
    """Size of the request body: a message cannot be larger, so small requests skip measuring."""
    heavy_requests: HeavyRequests | None = None
    """This replica's slots for heavy requests; None: unlimited (tests without a server)."""
    read_replica: Database | None = None
    """The read replica (``DATABASE_READ_URL``); None without one."""
    read_from: ReadFrom | None = None
    """The request's ``X-Read-From`` header (``graphql_api.read_routing``)."""
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    """The default retention rule, and the batch size ``deleteSessions`` shares with retention."""
    live: "Live | None" = None
    """This process's subscriptions (``graphql_api.live``); None in tests without a server."""
    connection: "LiveConnection | None" = None
    """The websocket a subscription came on; None over HTTP."""
    connection_params: dict[str, Any] | None = None
    """The ``connection_init`` payload, set by strawberry."""
    primary: Database = field(init=False)
    """Where writes go, whatever the request reads from."""
    rows: RowBudget = field(init=False)
    answer: AnswerBudget = field(init=False)
    _loaders: Loaders | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.primary = self.db
        self.answer = AnswerBudget(self.limits.max_response_bytes)
        self.rows = RowBudget(self.limits.max_cost)

    @property
    def caller_bucket(self) -> str:
        """Who the caller is to the per-caller limits: a key, a JWT subject, or everyone (open)."""
        return self.caller.rate_bucket or self.caller.kind

    @property
    def loaders(self) -> Loaders:
        """Made on first use: most mutations (an agent's appends) load nothing nested."""
        if self._loaders is None:
            self._loaders = create_loaders(self.db, self.rows, self.answer)
        return self._loaders

    def read_from_replica(self) -> None:
        """Sends every read of this request to the read replica; called before anything has read."""
        if self.read_replica is not None:
            self.db = self.read_replica
            self._loaders = None

    @property
    def actor(self) -> Actor:
        """The caller as the audit log records it."""
        return Actor(name=self.caller.name, role=self.caller.role.value, request_id=self.request_id)

    async def read(self, fetch: Callable[[AsyncConnection, int], Awaitable[T]]) -> T:
        """``fetch(conn, most_bytes)``, a root field's idempotent read of stored documents, told how
        many bytes the answer has room for (one such read at a time); what would not fit refuses the
        answer whole (``RESPONSE_TOO_LARGE``)."""
        return await self.answer.read_within(
            lambda most_bytes: self.db.run(lambda conn: fetch(conn, most_bytes), idempotent=True),
            take_turns=True,
        )

    async def write(
        self,
        fetch: Callable[[AsyncConnection], Awaitable[T]],
        *,
        transaction: bool = False,
        idempotent: bool = False,
    ) -> T:
        """Runs a mutation's write (in one transaction when asked), after forgetting what this request
        has read so far.

        A document may hold several mutations, each answered with nested fields; those must show
        the data after the mutation, not what an earlier field of the same request cached. Mutations
        run one after another, so swapping the loaders here cannot disturb a field in flight.
        """
        self._loaders = None
        run = self.primary.run_in_transaction if transaction else self.primary.run
        return await run(fetch, idempotent=idempotent)

    async def write_in_batches(self, work: Callable[[Database], Awaitable[T]]) -> T:
        """Runs a write that makes its own transactions on the primary (a bulk delete, batch by
        batch), after forgetting what this request has read so far, as ``write`` does."""
        self._loaders = None
        return await work(self.primary)


Info: TypeAlias = StrawberryInfo[Context, None]
