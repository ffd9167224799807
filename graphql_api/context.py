"""What every resolver gets through ``info.context``."""

from dataclasses import dataclass, field
from typing import TypeAlias

from starlette.requests import Request
from strawberry.types import Info as StrawberryInfo

from db.engine import Database
from graphql_api.loaders import Loaders, create_loaders


@dataclass
class Context:
    """Per request: the database, the request's own loaders, and (later) the caller's identity."""

    db: Database
    request: Request | None = None
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = create_loaders(self.db)

    def database_for_write(self) -> Database:
        """The database, after forgetting what this request has read so far.

        A document may hold several mutations, each answered with nested fields; those must show
        the data after the mutation, not what an earlier field of the same request cached. Mutations
        run one after another, so swapping the loaders here cannot disturb a field in flight.
        """
        self.loaders = create_loaders(self.db)
        return self.db


Info: TypeAlias = StrawberryInfo[Context, None]
