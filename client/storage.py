"""``GraphQLStorage``: Strands' ``Storage`` protocol over the session store's API.

Give it to Strands' ``SnapshotSessionManager`` (or anything else that takes a ``Storage``)::

    storage = GraphQLStorage("http://localhost:8000/graphql", token=key)
    sessions = SnapshotSessionManager(session_id="s-1", storage=storage)
    agent = Agent(agent_id="support", session_manager=sessions)

Snapshots written this way show up as sessions and agents in GraphiQL, dashboards, search and
stats, with their checkpoints under ``Agent.checkpoints``.
"""

import asyncio
import base64
import binascii
import builtins
import copy
import re
from collections.abc import Mapping
from typing import Any

# _NAMESPACED marks a view Strands must not namespace again (as its own backends' namespace() do).
from strands.storage.storage import _NAMESPACED, StorageSearchResult
from strands.types.exceptions import StorageError

from client import calls
from client.credentials import TokenProvider
from client.errors import GraphQLSessionError
from client.operations import (
    DELETE_STORAGE_OBJECT,
    LIST_STORAGE_KEYS,
    READ_STORAGE_OBJECT,
    SEARCH_STORAGE,
    WRITE_STORAGE_OBJECT,
)
from client.repository import GraphQLSessionRepository
from client.repository_base import DEFAULT_BACKOFF, DEFAULT_RETRIES, DEFAULT_TIMEOUT

SEARCH_RESULTS = 100
"""Results ``search`` asks for: the server's default page."""


class GraphQLStorageError(StorageError):
    """A storage call failed. ``code`` is the server's ``extensions.code`` (``CONFLICT``,
    ``BAD_USER_INPUT``, ``OBJECT_TOO_LARGE``, ...) or the client's (``TRANSPORT_FAILED``); the
    ``GraphQLSessionError`` it comes from is its ``__cause__``."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def _encoded(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _decoded(text: Any) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"expected base64 text, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as error:
        raise ValueError(f"the server sent bytes that are not base64: {error}") from None


def _ignore(_: calls.Data) -> None:
    return None


class GraphQLStorage:
    """Strands' async ``Storage`` over the API: ``write``, ``read``, ``delete``, ``list`` and
    ``search``, with bytes in and out unchanged.

    Keys are normalized as Strands' own backends normalize them (runs of ``/`` collapsed, outer
    ``/`` stripped; ``\\``, NUL and ``..`` segments refused), so ``LocalFileStorage`` keys carry
    over as they are. A write to an immutable checkpoint key that holds other bytes fails with
    code ``CONFLICT``; the same bytes succeed, so every call here is safe to retry, and is retried
    as ``GraphQLSessionRepository`` retries reads (``retries``, ``backoff``, ``timeout``). Any
    failure is a ``GraphQLStorageError``, a Strands ``StorageError``.

    ``search`` ranks with PostgreSQL full-text search (web search syntax) over a snapshot's
    messages or a JSON object's strings; its results carry no ``data`` (read the key for it).

    Strands calls storage from fresh event loops in worker threads, so requests go over one
    thread-safe kept-alive HTTP connection pool from worker threads (``asyncio.to_thread``), as
    Strands' own ``S3Storage`` does: a ``GraphQLStorage`` works from any loop and any thread.
    ``close()`` releases the connections.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | TokenProvider | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
    ) -> None:
        self.url = url
        self._repository = GraphQLSessionRepository(
            url, token=token, headers=headers, timeout=timeout, retries=retries, backoff=backoff
        )

    _prefix = ""

    def namespace(self, prefix: str) -> "GraphQLStorage":
        """A view of the keys under ``prefix/`` (nested views nest), as Strands' own backends give:
        keys in and out are relative to it, and ``search`` only sees its objects. Views share this
        storage's connections; close the storage they came from."""
        if "\\" in prefix or ".." in prefix.split("/"):
            raise GraphQLStorageError(f"Invalid storage prefix {prefix!r}", "BAD_USER_INPUT")
        normalized = re.sub(r"/+", "/", prefix).strip("/")
        view = copy.copy(self)
        view._prefix = f"{self._prefix}{normalized}/" if normalized else self._prefix
        view._namespaced = _NAMESPACED  # type: ignore[attr-defined]  # Strands' marker
        return view

    def _relative(self, key: str) -> str:
        return key[len(self._prefix) :]

    def close(self) -> None:
        self._repository.close()

    def __repr__(self) -> str:
        return f"GraphQLStorage({self.url!r})"

    async def _call(self, call: calls.Call[Any]) -> Any:
        try:
            return await asyncio.to_thread(self._repository.execute, call)
        except GraphQLSessionError as error:
            raise GraphQLStorageError(str(error), error.code) from error

    async def write(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing what it held."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise GraphQLStorageError(f"data must be bytes, got {type(data).__name__}", "BAD_USER_INPUT")
        variables = {"key": self._prefix + key, "data": _encoded(bytes(data))}
        await self._call(calls.Call(WRITE_STORAGE_OBJECT, variables, _ignore, retry_safe=True))

    async def read(self, key: str) -> bytes | None:
        """The bytes stored under ``key``, or None."""

        def read(data: calls.Data) -> bytes | None:
            found = data["storageObject"]
            return None if found is None else _decoded(found)

        result: bytes | None = await self._call(
            calls.Call(READ_STORAGE_OBJECT, {"key": self._prefix + key}, read, retry_safe=True)
        )
        return result

    async def delete(self, key: str) -> None:
        """Delete the object under ``key``; nothing happens when there is none."""
        await self._call(
            calls.Call(DELETE_STORAGE_OBJECT, {"key": self._prefix + key}, _ignore, retry_safe=True)
        )

    async def list(self, query: str = "") -> builtins.list[str]:
        """Every key starting with ``query`` (empty: all), sorted as Python sorts strings."""
        keys: builtins.list[str] = []
        after: str | None = None
        while True:
            variables = {"prefix": self._prefix + query, "after": after, "first": None}
            page = await self._call(
                calls.Call(LIST_STORAGE_KEYS, variables, lambda d: d["storageKeys"], retry_safe=True)
            )
            keys.extend(self._relative(key) for key in page["keys"])
            if not page["hasNextPage"] or not page["keys"]:
                return keys
            after = page["keys"][-1]

    async def search(self, query: str) -> builtins.list[StorageSearchResult]:
        """Objects matching ``query`` (PostgreSQL web search syntax), best first."""

        def found(data: calls.Data) -> builtins.list[StorageSearchResult]:
            return [
                StorageSearchResult(key=self._relative(hit["key"]), score=float(hit["score"]))
                for hit in data["searchStorage"]
            ]

        variables = {"query": query, "prefix": self._prefix, "first": SEARCH_RESULTS}
        results: builtins.list[StorageSearchResult] = await self._call(
            calls.Call(SEARCH_STORAGE, variables, found, retry_safe=True)
        )
        return results
