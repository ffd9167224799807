"""GraphQLStorage behaves as Strands' LocalFileStorage for every call of the ``Storage`` protocol.

One script of calls runs against ``LocalFileStorage(tmp_path)`` and ``GraphQLStorage(server.url)``
and their outcomes are compared: what each call returned, or that it raised Strands'
``StorageError``. Every key starts with a namespace of its own (``new_id``), so tests sharing the
database never meet; an empty prefix is asked through Strands' ``_NamespacedStorage``, the view
``SnapshotSessionManager`` puts over any storage it is given.

Where GraphQLStorage differs on purpose it says so: an immutable checkpoint written again with
other bytes is a ``CONFLICT`` (a file is just overwritten), and ``search`` ranks with PostgreSQL's
full-text search rather than Strands' keyword overlap. Left out, because there the file system
decides rather than Strands' key rules (GraphQLStorage keeps to S3's): a key that is also a
"directory" of other keys ('a' next to 'a/b'), '.' segments (a path collapses 'a/./b'), lone
surrogates (not UTF-8), and keys over 1024 bytes.
"""

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from strands import Agent
from strands._identifier import new_uuid7
from strands.session.snapshot_session_manager import SnapshotSessionManager, _serialize_snapshot
from strands.storage import LocalFileStorage, Storage
from strands.storage.storage import StorageSearchResult, _NamespacedStorage
from strands.types._snapshot import SNAPSHOT_SCHEMA_VERSION, Snapshot
from strands.types.exceptions import StorageError

from client import GraphQLStorage, GraphQLStorageError
from graphql_api.settings import Limits, Settings
from tests.conftest import RunningServer
from tests.fake_model import FakeModel
from tests.secured import secured_server

NewId = Callable[[str], str]
Outcome = tuple[str, Any]
"""``("returned", value)`` or ``("raised", "StorageError")``."""
RAISED = ("raised", "StorageError")
RETURNED_NOTHING = ("returned", None)

UNICODE_NAMES = ["a", "Z", "z", "é", "e", "東", "京", "😀", "🎉", "~", "ÿ", "Ā", "\u00a0", "1", "_", "ﬀ"]
"""Key segments whose code point order (Python's ``sorted``) differs from most collations'."""
LISTED = ["a/b", "a/c", "ab", "a-b", "a.b", "a_c", "a%c", "b", "ä"]
"""Keys for prefix listings: '-' and '.' sort before '/', and '_' and '%' are LIKE wildcards."""
BLOB_BYTES = 5 * 1024 * 1024


def bad_keys(ns: str) -> dict[str, str]:
    """Keys LocalFileStorage refuses, by why: Strands' key rules, and a NUL, which no file name holds."""
    return {
        "a '..' segment": f"{ns}/../escape",
        "a '..' segment inside": f"{ns}/a/../b",
        "only '..'": "..",
        "a backslash": f"{ns}\\win",
        "a backslash inside": f"{ns}/a\\b",
        "the empty key": "",
        "only slashes": "///",
        "a NUL": f"{ns}/nul\x00byte",
    }


def bad_prefixes(ns: str) -> dict[str, str]:
    """List prefixes Strands' backends refuse, by why."""
    return {"a '..' prefix": f"{ns}/../", "an only '..' prefix": "..", "a backslashed prefix": f"{ns}\\"}


async def outcome(call: Awaitable[Any]) -> Outcome:
    """What a call did. Only ``StorageError`` counts as a refusal: anything else fails the test."""
    try:
        return ("returned", await call)
    except StorageError:
        return RAISED


async def protocol_script(storage: Storage, ns: str) -> list[tuple[str, Outcome]]:
    """The calls both backends must answer alike, each with a name for the failure report."""
    steps: list[tuple[str, Callable[..., Awaitable[Any]], tuple[Any, ...]]] = []

    def step(name: str, call: Callable[..., Awaitable[Any]], *args: Any) -> None:
        steps.append((name, call, args))

    every_byte, nothing = bytes(range(256)), b""
    step("write every byte value", storage.write, f"{ns}/bytes/all", every_byte)
    step("read every byte value", storage.read, f"{ns}/bytes/all")
    step("write empty bytes", storage.write, f"{ns}/bytes/empty", nothing)
    step("read empty bytes", storage.read, f"{ns}/bytes/empty")
    step("write bytes that are not UTF-8", storage.write, f"{ns}/bytes/latin", "naïve".encode("latin-1"))
    step("read bytes that are not UTF-8", storage.read, f"{ns}/bytes/latin")

    step("write once", storage.write, f"{ns}/over", b"first, and longer")
    step("overwrite", storage.write, f"{ns}/over", b"second")
    step("read the overwrite", storage.read, f"{ns}/over")
    step("overwrite with nothing", storage.write, f"{ns}/over", b"")
    step("read the emptied key", storage.read, f"{ns}/over")

    step("read a missing key", storage.read, f"{ns}/missing")
    step("delete a missing key", storage.delete, f"{ns}/missing")
    step("delete under a missing directory", storage.delete, f"{ns}/no/such/dir/key")
    step("write to delete", storage.write, f"{ns}/doomed", b"x")
    step("delete", storage.delete, f"{ns}/doomed")
    step("read the deleted key", storage.read, f"{ns}/doomed")
    step("delete it again", storage.delete, f"{ns}/doomed")

    step("write with doubled and outer slashes", storage.write, f"/{ns}//slashes//a//b/", b"slashed")
    step("read it normalized", storage.read, f"{ns}/slashes/a/b")
    step("read it with other slashes", storage.read, f"//{ns}/slashes///a/b//")
    step("list it normalized", storage.list, f"{ns}/slashes")
    step("delete it with slashes", storage.delete, f"{ns}//slashes/a/b/")
    step("read it after the delete", storage.read, f"{ns}/slashes/a/b")

    for name in UNICODE_NAMES:
        step(f"write unicode {name!r}", storage.write, f"{ns}/unicode/{name}", name.encode())
    step("read unicode '東'", storage.read, f"{ns}/unicode/東")
    step("read unicode '😀'", storage.read, f"{ns}/unicode/😀")
    step("list unicode keys", storage.list, f"{ns}/unicode/")
    step("list under a non-ASCII prefix", storage.list, f"{ns}/unicode/é")

    for key in LISTED:
        step(f"write {key!r} to list", storage.write, f"{ns}/list/{key}", b"listed")
    step("list a prefix ending in a segment", storage.list, f"{ns}/list/a")
    step("list a prefix ending in '/'", storage.list, f"{ns}/list/a/")
    step("list a directory", storage.list, f"{ns}/list/")
    step("list a directory without its '/'", storage.list, f"{ns}/list")
    step("list with '_' taken literally", storage.list, f"{ns}/list/a_")
    step("list with '%' taken literally", storage.list, f"{ns}/list/a%")
    step("list a prefix with doubled slashes", storage.list, f"/{ns}//list//a/")
    step("list a prefix nothing starts with", storage.list, f"{ns}/list/zzz")

    step("write a '..'-like segment", storage.write, f"{ns}/dots/..hidden/a..b", b"dots")
    step("read a '..'-like segment", storage.read, f"{ns}/dots/..hidden/a..b")
    for why, bad in bad_keys(ns).items():
        step(f"write {why}", storage.write, bad, b"refused")
        step(f"read {why}", storage.read, bad)
        step(f"delete {why}", storage.delete, bad)
    for why, bad in bad_prefixes(ns).items():
        step(f"list {why}", storage.list, bad)
    # No key holds a NUL, so no key starts with one: a listing, not a refusal, as with files.
    step("list a prefix with a NUL", storage.list, f"{ns}/nul\x00")

    view = _NamespacedStorage(storage, ns)
    step("list the namespace with an empty prefix", view.list, "")
    step("list the namespace's 'list/a'", view.list, "list/a")
    step("read through the namespace", view.read, "bytes/all")
    step("write through the namespace", view.write, "via/view", b"viewed")
    step("read what the namespace wrote", storage.read, f"{ns}/via/view")

    # One after the other, as each call may depend on the ones before.
    return [(name, await outcome(call(*args))) for name, call, args in steps]


@pytest.fixture
def remote(server: RunningServer) -> Iterator[GraphQLStorage]:
    storage = GraphQLStorage(server.url)
    yield storage
    storage.close()


async def test_every_protocol_call_behaves_as_with_local_files(
    remote: GraphQLStorage, tmp_path: Path, new_id: NewId
) -> None:
    ns = new_id("protocol")

    local_outcomes = await protocol_script(LocalFileStorage(str(tmp_path)), ns)
    remote_outcomes = await protocol_script(remote, ns)

    assert remote_outcomes == local_outcomes
    # And the script itself says what it should: the shared answers are the right ones.
    answers = dict(remote_outcomes)
    assert answers["read every byte value"] == ("returned", bytes(range(256)))
    assert answers["read empty bytes"] == ("returned", b"")
    assert answers["read the overwrite"] == ("returned", b"second")
    assert answers["read a missing key"] == answers["read the deleted key"] == RETURNED_NOTHING
    assert answers["delete a missing key"] == answers["delete it again"] == RETURNED_NOTHING
    assert answers["read it with other slashes"] == ("returned", b"slashed")
    assert answers["list it normalized"] == ("returned", [f"{ns}/slashes/a/b"])
    unicode_keys = sorted(f"{ns}/unicode/{name}" for name in UNICODE_NAMES)
    assert answers["list unicode keys"] == ("returned", unicode_keys)
    assert answers["list a prefix ending in '/'"] == ("returned", [f"{ns}/list/a/b", f"{ns}/list/a/c"])
    assert answers["list with '_' taken literally"] == ("returned", [f"{ns}/list/a_c"])
    assert answers["list a directory"] == ("returned", sorted(f"{ns}/list/{key}" for key in LISTED))
    refused = {name for name, done in remote_outcomes if done == RAISED}
    assert refused == {f"{call} {why}" for why in bad_keys(ns) for call in ("write", "read", "delete")} | {
        f"list {why}" for why in bad_prefixes(ns)
    }
    everything = answers["list the namespace with an empty prefix"][1]
    assert everything == sorted(everything) and "bytes/all" in everything and "via/view" not in everything
    assert answers["read what the namespace wrote"] == ("returned", b"viewed")


async def test_a_snapshot_sized_blob_round_trips_unchanged(
    remote: GraphQLStorage, tmp_path: Path, new_id: NewId
) -> None:
    key = f"{new_id('blob')}/session/snapshot_latest.json"
    blob = random.Random(5).randbytes(BLOB_BYTES)
    local = LocalFileStorage(str(tmp_path))

    for storage in (local, remote):
        await storage.write(key, blob)

    assert await remote.read(key) == await local.read(key) == blob
    assert await remote.list(key) == await local.list(key) == [key]


def agent_snapshot(text: str) -> bytes:
    """A snapshot as SnapshotSessionManager writes it: Strands' own type and serializer."""
    messages = [
        {"role": "user", "content": [{"text": text}]},
        {"role": "assistant", "content": [{"text": f"echo: {text}"}]},
    ]
    data = {"messages": messages, "state": {"topic": text}}
    snapshot = Snapshot(scope="agent", schema_version=SNAPSHOT_SCHEMA_VERSION, data=data, app_data={})
    return _serialize_snapshot(snapshot)


async def test_an_immutable_checkpoint_takes_the_same_bytes_again_but_no_others(
    remote: GraphQLStorage, tmp_path: Path, new_id: NewId
) -> None:
    session_id, agent_id, snapshot_id = new_id("session"), "support", new_uuid7()
    snapshots = f"session/{session_id}/scopes/agent/{agent_id}/snapshots"
    key = f"{snapshots}/immutable_history/snapshot_{snapshot_id}.json"
    first, other = agent_snapshot("first"), agent_snapshot("rewritten")
    local = LocalFileStorage(str(tmp_path))

    for storage in (local, remote):
        await storage.write(key, first)
        await storage.write(key, first)  # a retry of a write whose answer was lost
        assert await storage.read(key) == first

    # The difference, on purpose: a file is overwritten, but a checkpoint is history, and a second
    # writer with other bytes (a clock or id collision, a bug) must not rewrite it.
    await local.write(key, other)
    assert await local.read(key) == other
    with pytest.raises(GraphQLStorageError) as raised:
        await remote.write(key, other)
    assert raised.value.code == "CONFLICT"
    assert isinstance(raised.value, StorageError)
    assert await remote.read(key) == first

    # Strands finds the checkpoint in either storage, and restores it.
    for storage in (local, remote):
        manager = SnapshotSessionManager(session_id=session_id, storage=storage)
        agent = Agent(agent_id=agent_id, model=FakeModel(), callback_handler=None)
        assert await manager.list_snapshot_ids(agent) == [snapshot_id]
        assert await manager.restore_snapshot(agent, snapshot_id=snapshot_id) is True
        assert agent.state.get("topic") == ("rewritten" if storage is local else "first")


def json_object(*words: str) -> bytes:
    return ('{"title": "notes", "body": "' + " ".join(words) + '"}').encode()


async def test_search_ranks_the_matching_key_first(
    remote: GraphQLStorage, tmp_path: Path, new_id: NewId
) -> None:
    ns = new_id("search")
    word, other = new_id("aardvark").replace("-", ""), new_id("okapi").replace("-", "")
    objects = {
        f"{ns}/a-mentions-once": json_object("filler text about", word, "and nothing else"),
        f"{ns}/b-both-words": json_object(word, "meets", other),
        f"{ns}/c-unrelated": json_object("nothing to see"),
        f"{ns}/d-bytes": bytes(range(256)),
        f"{ns}/z-many-times": json_object(word, word, word, "again", word),
    }
    local = LocalFileStorage(str(tmp_path))
    for storage in (local, remote):
        for key, data in objects.items():
            await storage.write(key, data)

    both_remote = await remote.search(f"{word} {other}")
    both_local = await local.search(f"{word} {other}")
    assert (
        [hit.key for hit in both_remote][:1] == [hit.key for hit in both_local][:1] == [f"{ns}/b-both-words"]
    )

    ranked = await remote.search(word)
    assert all(isinstance(hit, StorageSearchResult) for hit in ranked)
    assert [hit.key for hit in ranked][:1] == [f"{ns}/z-many-times"]
    assert sorted(hit.key for hit in ranked[1:]) == [f"{ns}/a-mentions-once", f"{ns}/b-both-words"]
    assert ranked[0].score > ranked[-1].score > 0
    assert [hit.data for hit in ranked] == [None, None, None]  # GraphQLStorage sends no bytes back
    # Namespaced, as a Strands component scoped to the namespace searches.
    scoped = await _NamespacedStorage(remote, ns).search(word)
    assert [hit.key for hit in scoped] == [hit.key.removeprefix(f"{ns}/") for hit in ranked]
    assert await remote.search(new_id("nowhere").replace("-", "")) == []


@pytest.fixture(scope="module")
def small_pages(database_url: str) -> Iterator[RunningServer]:
    """A server answering at most three keys per page, on the suite's database."""
    limits = Limits.from_env({"SESSION_GRAPHQL_MAX_LIST_SIZE": "3"})
    running = RunningServer(Settings(database_url=database_url, limits=limits))
    running.start()
    yield running
    running.stop()


async def test_list_pages_through_more_keys_than_one_server_page(
    small_pages: RunningServer, tmp_path: Path, new_id: NewId
) -> None:
    ns = new_id("paged")
    keys = [f"{ns}/{name}" for name in UNICODE_NAMES] + [f"{ns}-sibling/outside"]
    local, remote = LocalFileStorage(str(tmp_path)), GraphQLStorage(small_pages.url)
    for storage in (local, remote):
        for key in keys:
            await storage.write(key, b"x")

    async with httpx.AsyncClient() as http:
        answer = await http.post(
            small_pages.url,
            json={
                "query": "query($p: String!) { storageKeys(prefix: $p) { keys hasNextPage } }",
                "variables": {"p": ns},
            },
        )
    first_page = answer.json()["data"]["storageKeys"]
    assert (len(first_page["keys"]), first_page["hasNextPage"]) == (3, True)

    expected = sorted(keys)
    assert await remote.list(ns) == await local.list(ns) == expected
    inside = [key for key in expected if key.startswith(f"{ns}/")]  # '-' sorts before '/'
    assert await remote.list(f"{ns}/") == await local.list(f"{ns}/") == inside
    assert await _NamespacedStorage(remote, ns).list("") == sorted(UNICODE_NAMES)
    remote.close()


async def test_tenants_do_not_see_each_others_keys(server: RunningServer, new_id: NewId) -> None:
    ns = new_id("tenants")
    t1 = GraphQLStorage(server.url, headers={"X-Tenant": "t1"})
    t2 = GraphQLStorage(server.url, headers={"X-Tenant": "t2"})
    untenanted = GraphQLStorage(server.url)

    await t1.write(f"{ns}/shared", b"t1's")
    await t2.write(f"{ns}/shared", b"t2's")
    await t1.write(f"{ns}/only-t1", b"secret")

    assert await t1.read(f"{ns}/shared") == b"t1's"
    assert await t2.read(f"{ns}/shared") == b"t2's"
    assert await t2.read(f"{ns}/only-t1") is None
    assert await untenanted.read(f"{ns}/shared") is None
    assert await t1.list(ns) == [f"{ns}/only-t1", f"{ns}/shared"]
    assert await t2.list(ns) == [f"{ns}/shared"]
    assert await untenanted.list(ns) == []

    await t2.delete(f"{ns}/only-t1")
    await t2.delete(f"{ns}/shared")
    assert await t1.read(f"{ns}/only-t1") == b"secret"
    assert await t1.read(f"{ns}/shared") == b"t1's"
    assert await t2.list(ns) == []
    for storage in (t1, t2, untenanted):
        storage.close()


def code_of(call: Coroutine[Any, Any, Any]) -> str:
    with pytest.raises(GraphQLStorageError) as raised:
        asyncio.run(call)
    return raised.value.code


def test_roles_decide_who_reads_writes_and_deletes(database_url: str, new_id: NewId) -> None:
    key = f"{new_id('roles')}/object"
    run = asyncio.run
    with secured_server(database_url) as secured:
        url = secured.server.url
        reader, writer, admin = (
            GraphQLStorage(url, token=secured.key(role)) for role in ("reader", "writer", "admin")
        )
        nobody = GraphQLStorage(url)

        assert code_of(reader.write(key, b"by a reader")) == "FORBIDDEN"
        assert run(reader.read(key)) is None
        run(writer.write(key, b"by a writer"))
        assert run(writer.read(key)) == run(reader.read(key)) == b"by a writer"
        assert run(reader.list(key)) == [key]
        assert code_of(reader.delete(key)) == "FORBIDDEN"
        assert code_of(writer.delete(key)) == "FORBIDDEN"
        assert run(reader.read(key)) == b"by a writer"
        assert code_of(nobody.read(key)) == "UNAUTHENTICATED"

        run(admin.delete(key))

        assert run(writer.read(key)) is None
        for storage in (reader, writer, admin, nobody):
            storage.close()


def test_a_namespace_view_behaves_as_local_file_storages_and_searches_only_its_objects(
    server: RunningServer, tmp_path: Path, new_id: NewId
) -> None:
    root = new_id("ns")
    word = new_id("quokka").replace("-", "")
    local = LocalFileStorage(str(tmp_path)).namespace(f"{root}/memory")
    remote = GraphQLStorage(server.url).namespace(f"{root}//memory/")
    other = GraphQLStorage(server.url).namespace(f"{root}/other")

    async def script(storage: Any) -> list[Any]:
        await storage.write("notes/a.json", json.dumps({"text": f"the {word} smiles"}).encode())
        await storage.write("/notes//b.json", b'{"text": "nothing here"}')
        return [
            await storage.read("notes/a.json"),
            await storage.list(""),
            await storage.list("notes/"),
            getattr(storage, "_namespaced", None) is not None,
        ]

    assert asyncio.run(script(remote)) == asyncio.run(script(local))
    asyncio.run(other.write("elsewhere.json", json.dumps({"text": f"another {word}"}).encode()))

    hits = asyncio.run(remote.search(word))
    assert [hit.key for hit in hits] == ["notes/a.json"]  # the other namespace's object is not seen
    assert asyncio.run(GraphQLStorage(server.url).list(f"{root}/")) == [
        f"{root}/memory/notes/a.json",
        f"{root}/memory/notes/b.json",
        f"{root}/other/elsewhere.json",
    ]
