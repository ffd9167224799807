"""Strands session repositories backed by the GraphQL session store.

Give ``GraphQLSessionRepository`` to Strands' ``RepositorySessionManager``::

    repo = GraphQLSessionRepository("http://localhost:8000/graphql", token=identity.access_token)
    sessions = RepositorySessionManager(session_id="s-1", session_repository=repo)
    agent = Agent(agent_id="support", session_manager=sessions)
"""

from client.async_repository import AsyncGraphQLSessionRepository
from client.errors import (
    GraphQLSessionError,
    SessionAlreadyExistsError,
    SessionBadInputError,
    SessionConflictError,
    SessionDataError,
    SessionForbiddenError,
    SessionLimitError,
    SessionNotFoundError,
    SessionRateLimitedError,
    SessionTimeoutError,
    SessionTokenProviderError,
    SessionTransportError,
    SessionUnauthenticatedError,
    SessionUnavailableError,
)
from client.repository import GraphQLSessionRepository
from client.storage import GraphQLStorage, GraphQLStorageError

__all__ = [
    "AsyncGraphQLSessionRepository",
    "GraphQLSessionError",
    "GraphQLSessionRepository",
    "GraphQLStorage",
    "GraphQLStorageError",
    "SessionAlreadyExistsError",
    "SessionBadInputError",
    "SessionConflictError",
    "SessionDataError",
    "SessionForbiddenError",
    "SessionLimitError",
    "SessionNotFoundError",
    "SessionRateLimitedError",
    "SessionTimeoutError",
    "SessionTokenProviderError",
    "SessionTransportError",
    "SessionUnauthenticatedError",
    "SessionUnavailableError",
]
