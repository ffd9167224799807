"""The tenancy rule of ``db/``: nothing reads or writes a session table without naming the tenant.

Every public function of ``db.conversations.reads`` and ``db.conversations.writes`` takes a ``Scope`` or
keys whose first element is the tenant; a new query written without one fails here before it can leak a
row.
"""

import inspect
import typing
from collections.abc import Sequence
from types import ModuleType

import pytest

from db.analytics import listings, search, stats
from db.analytics.listings import AgentFilterKey, AgentMessagesKey, LastMessageKey
from db.conversations import message_writes, reads, writes
from db.conversations.reads import AgentsOfSessionKey, MessageWindowKey
from db.records import AgentKey, MessageKey, MultiAgentKey, SessionKey
from db.storage import checkpoints, forks, objects, projection
from db.storage.checkpoints import CheckpointKey, CheckpointsKey
from db.tenancy import Scope

TENANT_FIRST_KEYS = {
    SessionKey,
    AgentKey,
    MessageKey,
    MultiAgentKey,
    MessageWindowKey,
    AgentMessagesKey,
    AgentFilterKey,
    CheckpointKey,
    CheckpointsKey,
    AgentsOfSessionKey,
    LastMessageKey,
}
NOT_QUERIES = {
    "totals_of",
    "key_params",
    "key_values",
    "unnested_keys",
    "messages_of_key",
    "session_record",
    "agent_record",
    "message_record",
    "numbered_records",
    "message_columns",
    "multi_agent_record",
    "same_message_content",
    "facts_json",
    "bucket_starts",
}


def public_functions(module: ModuleType) -> list[str]:
    return [
        name
        for name, function in inspect.getmembers(module, inspect.isfunction)
        if not name.startswith("_") and function.__module__ == module.__name__ and name not in NOT_QUERIES
    ]


def names_its_tenant(function: typing.Callable[..., object]) -> bool:
    for name, hint in typing.get_type_hints(function).items():
        if name == "return":
            continue
        if hint is Scope:
            return True
        if typing.get_origin(hint) is Sequence and typing.get_args(hint)[0] in TENANT_FIRST_KEYS:
            return True
    return False


MODULES = [
    reads,
    writes,
    listings,
    message_writes,
    search,
    stats,
    objects,
    projection,
    checkpoints,
    forks,
]


@pytest.mark.parametrize("module", MODULES, ids=[module.__name__ for module in MODULES])
def test_every_query_and_command_takes_a_scope_or_tenant_first_keys(module: ModuleType) -> None:
    functions = public_functions(module)

    assert functions  # the inspection found what it should look at
    assert [name for name in functions if not names_its_tenant(getattr(module, name))] == []


def test_every_key_type_starts_with_the_tenant() -> None:
    # (tenant, session_id, ...): the loaders and the SQL both read the tenant from position 0.
    for key in TENANT_FIRST_KEYS:
        assert issubclass(key, tuple) and key._fields[:2] == ("tenant", "session_id"), key
        assert list(typing.get_type_hints(key).values())[:2] == [str, str], key
