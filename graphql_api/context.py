"""What every resolver gets through ``info.context``."""

from dataclasses import dataclass, field
from typing import TypeAlias

from starlette.requests import Request
from strawberry.types import Info as StrawberryInfo

from db.engine import Database
from db.records import Actor
from db.tenancy import Scope
from graphql_api.identity import OPEN_CALLER, Caller
from graphql_api.loaders import Loaders, RowBudget, create_loaders
from graphql_api.settings import Limits

OPEN_SCOPE = Scope(all_tenants=True)


@dataclass
class Context:
    """Per request: the database, who calls and in which tenant, the limits, and the request's loaders."""

    db: Database
    caller: Caller = OPEN_CALLER
    scope: Scope = OPEN_SCOPE
    limits: Limits = field(default_factory=Limits)
    request: Request | None = None
    request_id: str | None = None
    body_bytes: int = 0
    """Size of the request body: a message cannot be larger, so small requests skip measuring."""
    rows: RowBudget = field(init=False)
    _loaders: Loaders | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.rows = RowBudget(self.limits.max_cost)

    @property
    def loaders(self) -> Loaders:
        """Made on first use: most mutations (an agent's appends) load nothing nested."""
        if self._loaders is None:
            self._loaders = create_loaders(self.db, self.rows)
        return self._loaders

    @property
    def actor(self) -> Actor:
        """The caller as the audit log records it."""
        return Actor(name=self.caller.name, role=self.caller.role.value, request_id=self.request_id)

    def database_for_write(self) -> Database:
        """The database, after forgetting what this request has read so far.

        A document may hold several mutations, each answered with nested fields; those must show
        the data after the mutation, not what an earlier field of the same request cached. Mutations
        run one after another, so swapping the loaders here cannot disturb a field in flight.
        """
        self._loaders = None
        return self.db


Info: TypeAlias = StrawberryInfo[Context, None]
