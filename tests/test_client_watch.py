"""The client's ``watch_messages``: an agent's messages as they are written, async and blocking,
resuming by itself after the connection drops."""

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from strands.types.session import SessionAgent, SessionMessage

from client import AsyncGraphQLSessionRepository, GraphQLSessionRepository, SessionUnauthenticatedError
from graphql_api.settings import Settings
from tests.secured import secured_server
from tests.server_process import ServerProcess


def message(message_id: int) -> SessionMessage:
    return SessionMessage({"role": "user", "content": [{"text": f"m{message_id}"}]}, message_id)


@pytest.fixture(scope="module")
def served(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(database_url, Path(tmp_path_factory.mktemp("watch") / "serve.log")).start()
    yield server
    server.stop()


def new_agent(url: str, session_id: str) -> GraphQLSessionRepository:
    from strands.types.session import Session, SessionType

    repo = GraphQLSessionRepository(url)
    repo.create_session(Session(session_id, SessionType.AGENT))
    repo.create_agent(session_id, SessionAgent("agent", {}, {}))
    return repo


async def test_watch_messages_gives_stored_then_new_messages_and_resumes_after_a_restart(
    served: ServerProcess, new_id: object
) -> None:
    url = f"{served.base_url}/graphql"
    session_id = f"watch-{id(served)}-{threading.get_ident()}"
    writer = await asyncio.to_thread(new_agent, url, session_id)
    for n in range(3):
        await asyncio.to_thread(writer.create_message, session_id, "agent", message(n))
    watcher = AsyncGraphQLSessionRepository(url)
    watching = watcher.watch_messages(session_id, "agent", after=0)
    assert [(await anext(watching)).message_id for _ in range(2)] == [1, 2]
    # The server goes away and comes back on the same port; messages are written meanwhile.
    served.stop()
    restarted = ServerProcess(served.database_url, served.log)
    restarted.port = served.port
    await asyncio.to_thread(restarted.start)
    try:
        await asyncio.to_thread(writer.create_message, session_id, "agent", message(3))
        await asyncio.to_thread(writer.create_message, session_id, "agent", message(4))
        got = [await asyncio.wait_for(anext(watching), 30) for _ in range(2)]
        assert [m.message_id for m in got] == [3, 4]
        assert got[0].message == {"role": "user", "content": [{"text": "m3"}]}
    finally:
        await watching.aclose()  # type: ignore[attr-defined]
        await watcher.aclose()
        served.process = restarted.process
    writer.close()


def test_the_blocking_watch_is_a_generator_of_new_messages(served: ServerProcess) -> None:
    url = f"{served.base_url}/graphql"
    session_id = f"watch-sync-{threading.get_ident()}"
    writer = new_agent(url, session_id)
    writer.create_message(session_id, "agent", message(0))
    reader = GraphQLSessionRepository(url)
    watching = reader.watch_messages(session_id, "agent")  # only new ones

    def write_later() -> None:
        import time

        time.sleep(1.0)
        writer.create_message(session_id, "agent", message(1))

    thread = threading.Thread(target=write_later)
    thread.start()
    first = next(watching)
    thread.join()
    watching.close()
    assert first.message_id == 1
    reader.close()
    writer.close()


def test_refused_credentials_end_the_watch_with_a_typed_error(database_url: str) -> None:
    async def watch(url: str) -> None:
        repo = AsyncGraphQLSessionRepository(url, token="sgq_not_a_real_key")
        try:
            async for _ in repo.watch_messages("s", "a", after=-1):
                pass
        finally:
            await repo.aclose()

    with secured_server(database_url, Settings()) as secured, pytest.raises(SessionUnauthenticatedError):
        asyncio.run(watch(secured.server.url))
