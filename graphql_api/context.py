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


Info: TypeAlias = StrawberryInfo[Context, None]
