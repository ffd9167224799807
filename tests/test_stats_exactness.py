"""``conversationStats`` and ``toolStats`` equal what the stored rows add up to, right after every
write: backdated messages, redactions that change tool calls, deletes of messages, agents and
sessions, and snapshots that rewrite an agent's messages, in every tenant and time zone.

The expected answers are computed in Python from the rows (``tests/stats_from_rows.py``), never by
the server's own statements. Where the server keeps rollups folded in the background, the answers
are compared both before the fold (right after the writes) and after it (``wait_for_fold``).
Each example writes into two fresh tenants that share session ids, through writers running at once.
"""

import asyncio
import base64
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import create_async_engine

from graphql_api.settings import RollupSettings, Settings
from tests.api_calls import (
    APPEND_MESSAGES,
    CREATE_AGENT,
    CREATE_MESSAGE,
    CREATE_SESSION,
    DELETE_AGENT,
    DELETE_MESSAGE,
    DELETE_SESSION,
    UPDATE_MESSAGE,
    agent_input,
    data_of,
)
from tests.conftest import RunningServer
from tests.stats_from_rows import (
    RawRows,
    StatsQuery,
    StoredMessage,
    expected_stats,
    expected_tool_stats,
    stats_differences,
    tool_stats_differences,
)
from tests.strands_messages import assistant, tool_results, user

TEAMS = ("a", "b")
AGENTS = ("a1", "a2")
TOOLS = ("lookup", "refund", "search")
SNAPSHOT_AGENT = "snap"
"""The agent a session's snapshots (snapshot_latest.json) are read into."""
SESSIONS_PER_TENANT = 3
SLOTS = 2 * SESSIONS_PER_TENANT
"""A session of an example: two tenants with the same session ids."""
WINDOW = timedelta(days=3)
TRANSITIONS = {
    "lisbon-spring": datetime(2025, 3, 30, 1, 0, tzinfo=UTC),
    "lisbon-autumn": datetime(2024, 10, 27, 1, 0, tzinfo=UTC),
    "st-johns-spring": datetime(2025, 3, 9, 5, 30, tzinfo=UTC),
    "st-johns-autumn": datetime(2024, 11, 3, 4, 30, tzinfo=UTC),
}
"""Clock changes the windows of some examples straddle (Kathmandu and UTC have none)."""

UPDATE_SESSION = (
    "mutation($s: String!, $labels: JSON) { updateSession(sessionId: $s, labels: $labels) { sessionId } }"
)
WRITE_OBJECT = "mutation($k: String!, $d: Base64!) { writeStorageObject(key: $k, data: $d) { key } }"
DELETE_OBJECT = "mutation($k: String!) { deleteStorageObject(key: $k) }"
ROW = """bucketStart key messages sessions inputTokens outputTokens totalTokens cacheReadTokens
  avgLatencyMs p95LatencyMs toolCalls toolErrors"""


# --- writing ---


class Writer:
    """Mutations of one tenant through one HTTP client (each concurrent writer has its own)."""

    def __init__(self, http: httpx.Client, tenant: str) -> None:
        self.http = http
        self.tenant = tenant

    def call(self, query: str, **variables: Any) -> dict[str, Any]:
        response = self.http.post(
            "/graphql", json={"query": query, "variables": variables}, headers={"X-Tenant": self.tenant}
        )
        assert response.status_code == 200, response.text
        return data_of(response.json())

    def create_session(self, session_id: str, labels: dict[str, str]) -> None:
        self.call(CREATE_SESSION, session={"sessionId": session_id, "labels": labels})

    def create_agent(self, session_id: str, agent_id: str) -> None:
        self.call(CREATE_AGENT, sessionId=session_id, agent=agent_input(agent_id))

    def append(
        self, session_id: str, agent_id: str, inputs: Sequence[dict[str, Any]], batch: bool = True
    ) -> None:
        if batch:
            self.call(APPEND_MESSAGES, sessionId=session_id, agentId=agent_id, messages=list(inputs))
        else:
            for one in inputs:
                self.call(CREATE_MESSAGE, sessionId=session_id, agentId=agent_id, message=one)

    def redact(self, session_id: str, agent_id: str, message_id: int, message: Any, redaction: Any) -> None:
        given = {"messageId": message_id, "message": message, "redactMessage": redaction}
        self.call(UPDATE_MESSAGE, sessionId=session_id, agentId=agent_id, message=given)

    def delete_message(self, session_id: str, agent_id: str, message_id: int) -> None:
        self.call(DELETE_MESSAGE, sessionId=session_id, agentId=agent_id, messageId=message_id)

    def delete_agent(self, session_id: str, agent_id: str) -> None:
        self.call(DELETE_AGENT, sessionId=session_id, agentId=agent_id)

    def delete_session(self, session_id: str) -> None:
        self.call(DELETE_SESSION, sessionId=session_id)

    def relabel(self, session_id: str, labels: dict[str, str]) -> None:
        self.call(UPDATE_SESSION, s=session_id, labels=labels)

    def write_snapshot(self, session_id: str, messages: list[Any], created_at: str) -> None:
        """The agent's snapshot_latest.json, as Strands' SnapshotSessionManager writes it."""
        snapshot = {
            "schema_version": "1.0",
            "scope": "agent",
            "created_at": created_at,
            "data": {"messages": messages, "state": {}, "conversation_manager_state": {}},
        }
        data = base64.b64encode(json.dumps(snapshot).encode()).decode()
        self.call(WRITE_OBJECT, k=snapshot_key(session_id), d=data)

    def delete_snapshot(self, session_id: str) -> None:
        self.call(DELETE_OBJECT, k=snapshot_key(session_id))


def snapshot_key(session_id: str) -> str:
    return f"session/{session_id}/scopes/agent/{SNAPSHOT_AGENT}/snapshots/snapshot_latest.json"


def team_labels(team: str | None) -> dict[str, str]:
    return {} if team is None else {"team": team}


@dataclass(frozen=True)
class Window:
    """Where an example's messages are written: ``live`` ends now, and messages may then be
    written without a time (the server stamps them), as an agent's turn is."""

    start: datetime
    end: datetime
    live: bool

    def created_at(self, at: int | None) -> str | None:
        """The createdAt of a message ``at`` seconds into the window (None: written now)."""
        if at is None:
            return None if self.live else self.end.isoformat()
        return (self.start + timedelta(seconds=at)).isoformat()


def window_of(epoch: str) -> Window:
    if epoch == "live":
        now = datetime.now(UTC)
        return Window(now - WINDOW, now, live=True)
    return Window(TRANSITIONS[epoch] - WINDOW / 2, TRANSITIONS[epoch] + WINDOW / 2, live=False)


# --- what the writers write: operations, and a model of each session to keep them valid ---


@dataclass(frozen=True)
class Turn:
    """One message: a user's question, an assistant's answer (tokens, latency, tool calls), or a
    user message with the results of the calls still open (each an error or not)."""

    kind: Literal["user", "assistant", "results"]
    at: int | None
    usage: tuple[int, int, int] | None = None
    latency_ms: int | None = None
    tools: tuple[str, ...] = ()
    errors: tuple[bool, ...] = ()


@dataclass(frozen=True)
class CreateSession:
    team: str | None


@dataclass(frozen=True)
class CreateAgent:
    agent: str


@dataclass(frozen=True)
class Append:
    agent: str
    turns: tuple[Turn, ...]
    batch: bool


@dataclass(frozen=True)
class Redact:
    """An update of a message: a redaction (``redacted``'s ``how``), or with ``how`` 3 the message
    itself ``corrected``."""

    agent: str
    pick: int
    how: int


@dataclass(frozen=True)
class DeleteMessage:
    agent: str
    pick: int


@dataclass(frozen=True)
class DeleteAgent:
    agent: str


@dataclass(frozen=True)
class DeleteSession:
    pass


@dataclass(frozen=True)
class Relabel:
    team: str | None


@dataclass(frozen=True)
class WriteSnapshot:
    keep: int
    turns: tuple[Turn, ...]
    at: int | None


@dataclass(frozen=True)
class DeleteSnapshot:
    pass


Operation = (
    CreateSession
    | CreateAgent
    | Append
    | Redact
    | DeleteMessage
    | DeleteAgent
    | DeleteSession
    | Relabel
    | WriteSnapshot
    | DeleteSnapshot
)


def seen(message: Any, redaction: Any) -> Any:
    return message if redaction is None else redaction


def open_calls(conversation: Sequence[Any]) -> list[str]:
    """Calls of the conversation no result answers yet, oldest first."""
    blocks = [block for message in conversation for block in message["content"]]
    answered = {block["toolResult"]["toolUseId"] for block in blocks if "toolResult" in block}
    return [
        b["toolUse"]["toolUseId"]
        for b in blocks
        if "toolUse" in b and b["toolUse"]["toolUseId"] not in answered
    ]


def message_of(turn: Turn, conversation: Sequence[Any], new_call_id: Callable[[], str]) -> dict[str, Any]:
    if turn.kind == "assistant":
        usage = None if turn.usage is None else (turn.usage[0], turn.usage[1], turn.usage[0] + turn.usage[1])
        cache = (0, 0) if turn.usage is None else (turn.usage[2], 0)
        tools = [(new_call_id(), name, {"q": name}) for name in turn.tools]
        return assistant("answer", tools=tools, usage=usage, cache=cache, latency_ms=turn.latency_ms)
    waiting = open_calls(conversation)[: len(turn.errors)]
    if turn.kind == "results" and waiting:
        return tool_results(
            *((i, "error" if error else "success") for i, error in zip(waiting, turn.errors, strict=False))
        )
    return user("question")


def corrected(message: Any) -> dict[str, Any]:
    """The message itself rewritten (an update that is no redaction): other tokens and latency."""
    usage = {"inputTokens": 7, "outputTokens": 5, "totalTokens": 12}
    return {**message, "metadata": {"usage": usage, "metrics": {"latencyMs": 321}}}


def redacted(shown: Any, how: int) -> dict[str, Any]:
    """A guardrail's replacement of what the agent saw: every tool block gone (how 0), the first one
    gone (1), or the first one changed (2: its call names another tool, its result flips)."""
    blocks = [dict(block) for block in shown["content"]]
    tool_blocks = [n for n, block in enumerate(blocks) if "toolUse" in block or "toolResult" in block]
    if how == 0 or not tool_blocks:
        return {"role": shown["role"], "content": [{"text": "[redacted]"}]}
    first = tool_blocks[0]
    if how == 1:
        del blocks[first]
    elif "toolUse" in blocks[first]:
        use = blocks[first]["toolUse"]
        blocks[first] = {"toolUse": {**use, "name": TOOLS[(TOOLS.index(use["name"]) + 1) % len(TOOLS)]}}
    else:
        result = blocks[first]["toolResult"]
        flipped = "success" if result["status"] == "error" else "error"
        blocks[first] = {"toolResult": {**result, "status": flipped}}
    return {"role": shown["role"], "content": blocks or [{"text": "[redacted]"}]}


@dataclass
class AgentModel:
    messages: dict[int, tuple[Any, Any]] = field(default_factory=dict)
    """Stored messages by id: (message, redaction or None)."""
    next_id: int = 0
    next_call: int = 0

    def conversation(self) -> list[Any]:
        return [seen(*self.messages[n]) for n in sorted(self.messages)]

    def new_call_id(self) -> str:
        self.next_call += 1
        return f"call-{self.next_call}"


@dataclass
class SessionModel:
    """What one writer has written into one session: enough to make every operation a valid one,
    and to know which messages must be stored."""

    session_id: str
    default_team: str
    exists: bool = False
    snapshot_backed: bool = False
    snapshot: list[Any] | None = None
    """The messages of its snapshot_latest.json, while it has one."""
    snapshot_calls: int = 0
    agents: dict[str, AgentModel] = field(default_factory=dict)

    def gone(self) -> None:
        self.exists, self.snapshot_backed, self.snapshot, self.agents = False, False, None, {}

    def _session(self, w: Writer, team: str | None) -> None:
        if not self.exists:
            w.create_session(self.session_id, team_labels(team))
            self.exists = True

    def _agent(self, w: Writer, agent: str) -> AgentModel:
        self._session(w, self.default_team)
        if agent not in self.agents:
            w.create_agent(self.session_id, agent)
            self.agents[agent] = AgentModel()
        return self.agents[agent]

    def _snapshot_call_id(self) -> str:
        self.snapshot_calls += 1
        return f"snap-call-{self.snapshot_calls}"

    def apply(self, op: Operation, w: Writer, window: Window) -> None:
        """Performs ``op`` (or nothing, when there is nothing for it to act on)."""
        written = self.agents.get(getattr(op, "agent", ""))
        match op:
            case CreateSession(team=team):
                self._session(w, team)
            case CreateAgent(agent=agent):
                self._agent(w, agent)
            case Append(agent=agent, turns=turns, batch=batch):
                model = self._agent(w, agent)
                inputs = []
                for turn in turns:
                    body = message_of(turn, model.conversation(), model.new_call_id)
                    model.messages[model.next_id] = (body, None)
                    created = window.created_at(turn.at)
                    inputs.append(
                        {"messageId": model.next_id, "message": body}
                        | ({"createdAt": created} if created else {})
                    )
                    model.next_id += 1
                w.append(self.session_id, agent, inputs, batch)
            case Redact(agent=agent, pick=pick, how=how) if written and written.messages:
                message_id = sorted(written.messages)[pick % len(written.messages)]
                message, redaction = written.messages[message_id]
                if how == 3:
                    message = corrected(message)
                else:
                    redaction = redacted(seen(message, redaction), how)
                w.redact(self.session_id, agent, message_id, message, redaction)
                written.messages[message_id] = (message, redaction)
            case DeleteMessage(agent=agent, pick=pick) if written and written.messages:
                message_id = sorted(written.messages)[pick % len(written.messages)]
                w.delete_message(self.session_id, agent, message_id)
                del written.messages[message_id]
            case DeleteAgent(agent=agent) if written is not None:
                w.delete_agent(self.session_id, agent)
                del self.agents[agent]
            case DeleteSession() if self.exists:
                w.delete_session(self.session_id)
                self.gone()
            case Relabel(team=team) if self.exists:
                w.relabel(self.session_id, team_labels(team))
            case WriteSnapshot(keep=keep, turns=turns, at=at):
                before = self.snapshot or []
                conversation = before[: keep % (len(before) + 1)]
                for turn in turns:
                    conversation.append(message_of(turn, conversation, self._snapshot_call_id))
                w.write_snapshot(
                    self.session_id, conversation, window.created_at(at) or datetime.now(UTC).isoformat()
                )
                if not self.exists:
                    self.exists, self.snapshot_backed = True, True
                self.snapshot = conversation
                # The agent's messages are the snapshot's, by position (those unchanged keep their time).
                self.agents[SNAPSHOT_AGENT] = AgentModel({n: (m, None) for n, m in enumerate(conversation)})
            case DeleteSnapshot() if self.snapshot is not None:
                w.delete_snapshot(self.session_id)
                self.snapshot = None
                self.agents.pop(SNAPSHOT_AGENT, None)
                # A session only snapshots made goes with its last object.
                if self.snapshot_backed and not self.agents:
                    self.gone()

    def stored(self, tenant: str) -> set[tuple[str, str, str, int]]:
        return {
            (tenant, self.session_id, agent, message_id)
            for agent, model in self.agents.items()
            for message_id in model.messages
        }


# --- reading: the answers served, and the rows they must equal ---


VARIABLE = {
    "bucket": "b",
    "from": "from",
    "to": "to",
    "groupBy": "g",
    "label": "l",
    "timeZone": "z",
    "filter": "f",
}
"""Each conversationStats argument's variable in a document of many (suffixed with the field's number)."""


@dataclass(frozen=True)
class Reads:
    """The charts and tool tables a check asks for, in one document per caller."""

    stats: list[StatsQuery]
    tools: list[tuple[dict[str, Any], int]]

    def some(self, stats: Sequence[int], tools: Sequence[int]) -> "Reads":
        return Reads([self.stats[n] for n in stats], [self.tools[n] for n in tools])

    def document(self) -> str:
        params, fields = [], []
        for n in range(len(self.stats)):
            params.append(
                f"$b{n}: Bucket!, $from{n}: Time, $to{n}: Time, $g{n}: GroupBy!, $l{n}: String, "
                f"$z{n}: String!, $f{n}: ConversationFilter"
            )
            fields.append(
                f"s{n}: conversationStats(bucket: $b{n}, from: $from{n}, to: $to{n}, groupBy: $g{n}, "
                f"label: $l{n}, timeZone: $z{n}, filter: $f{n}) "
                "{ rows { ...R } keyTotals { ...R } totals { ...R } }"
            )
        for n in range(len(self.tools)):
            params.append(f"$tf{n}: ConversationFilter, $tn{n}: Int!")
            fields.append(f"t{n}: toolStats(filter: $tf{n}, first: $tn{n}) {{ name calls errors errorRate }}")
        return f"query({', '.join(params)}) {{ {' '.join(fields)} }}\nfragment R on StatsRow {{ {ROW} }}"

    def variables(self, narrowing: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for n, query in enumerate(self.stats):
            given = query.narrowed(narrowing).variables()
            found |= {f"{VARIABLE[name]}{n}": value for name, value in given.items()}
        for n, (f, first) in enumerate(self.tools):
            found |= {f"tf{n}": {**f, **narrowing}, f"tn{n}": first}
        return found


def reads_for(window: Window, cuts: Sequence[tuple[datetime, datetime]]) -> Reads:
    """Hour, day, week and minute charts by every grouping, in UTC and in zones whose offsets are
    not whole hours (Kathmandu +5:45, St John's -3:30) or change (Lisbon), over ranges on day and
    quarter-hour boundaries and off them (``cuts``), with filters; and tool tables."""
    day = window.start.replace(hour=0, minute=0, second=0, microsecond=0)
    last = (window.end + timedelta(hours=2)).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
        days=1
    )
    whole, quarters = (day, last), (day + timedelta(minutes=45), last - timedelta(minutes=15))
    (one, one_end), (other, other_end) = cuts
    lookups_in_one = {"created": {"start": one.isoformat(), "end": one_end.isoformat()}, "toolName": "lookup"}
    return Reads(
        stats=[
            StatsQuery("HOUR", *whole),
            StatsQuery("HOUR", one, one_end, "AGENT", "Asia/Kathmandu"),
            StatsQuery("HOUR", *quarters, "ROLE", "America/St_Johns"),
            StatsQuery("DAY", *whole, "TOOL", "Europe/Lisbon"),
            StatsQuery("DAY", one, one_end, "LABEL", "America/St_Johns", label="team"),
            StatsQuery(
                "HOUR", *quarters, "LABEL", "Europe/Lisbon", label="team", filter={"labels": {"team": "a"}}
            ),
            StatsQuery(
                "DAY",
                other,
                other_end,
                "NONE",
                "Asia/Kathmandu",
                filter={"agentId": "a1", "role": "assistant"},
            ),
            StatsQuery("HOUR", other, other_end, "TOOL", filter={"labels": {"team": "b"}}),
            StatsQuery("DAY", *whole, "SESSION", "America/St_Johns"),
            StatsQuery("WEEK", *whole, "NONE", "Europe/Lisbon"),
            StatsQuery("MINUTE", other, other + timedelta(minutes=100), "ROLE"),
            StatsQuery("DAY", *whole, "AGENT", filter=lookups_in_one),
        ],
        tools=[
            ({}, 100),
            ({"labels": {"team": "a"}}, 100),
            ({"created": {"start": other.isoformat(), "end": other_end.isoformat()}}, 100),
            ({"agentId": "a2"}, 2),
        ],
    )


ACROSS_TENANTS = (0, 2, 4, 8, 11)
"""The charts a caller seeing every tenant is checked on (each tenant is checked on all)."""


def assert_served_equals_rows(
    http: httpx.Client, raw: RawRows, prefix: str, tenants: Sequence[str], reads: Reads, when: str
) -> list[StoredMessage]:
    """Every chart and tool table, as each tenant and as a caller seeing every tenant (narrowed to
    ``prefix``) is served it, equals what the stored rows add up to. Returns the rows."""
    stored = raw.messages(prefix)
    problems = []
    callers: list[tuple[str | None, dict[str, str], dict[str, Any], Reads]] = [
        *((tenant, {"X-Tenant": tenant}, {}, reads) for tenant in tenants),
        # Across tenants a session is its id and tenant: the same ids in both tenants are two sessions.
        (None, {}, {"sessionIdPrefix": prefix}, reads.some(ACROSS_TENANTS, [0, 1])),
    ]
    for tenant, headers, narrowing, asked in callers:
        response = http.post(
            "/graphql",
            json={"query": asked.document(), "variables": asked.variables(narrowing)},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        served = data_of(response.json())
        who = tenant or "every tenant"
        for n, query in enumerate(asked.stats):
            differences = stats_differences(
                served[f"s{n}"], expected_stats(stored, query.narrowed(narrowing), tenant)
            )
            problems += [f"{who}, {query}: {d}" for d in differences[:4]]
        for n, (f, first) in enumerate(asked.tools):
            wanted = expected_tool_stats(stored, {**f, **narrowing}, first, tenant)
            problems += [
                f"{who}, toolStats({f}, {first}): {d}"
                for d in tool_stats_differences(served[f"t{n}"], wanted)
            ]
    assert not problems, f"{when}: the served answers differ from the rows:\n" + "\n".join(problems[:25])
    return stored


def remove_sessions(http: httpx.Client, raw: RawRows, prefix: str) -> None:
    """Deletes what a test wrote: listings of every tenant elsewhere expect each session id once."""
    for tenant, session_id in raw.sessions(prefix):
        Writer(http, tenant).delete_session(session_id)


@pytest.fixture(scope="module")
def raw(database_url: str) -> Iterator[RawRows]:
    # A loop of its own (not set as the thread's), so pytest-asyncio's loop is left alone.
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        engine = create_async_engine(database_url, pool_size=1, max_overflow=0)
        yield RawRows(runner, engine)
        runner.run(engine.dispose())


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[RunningServer]:
    """This module's own server, folding ten times a second instead of once: the tests wait for
    the fold after their writes, each a second at the default."""
    rollups = RollupSettings(fold_seconds=0.1)
    running = RunningServer(Settings(database_url=database_url, rollups=rollups))
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def clients(server: RunningServer) -> Iterator[list[httpx.Client]]:
    """One HTTP client per concurrent writer."""
    made = [httpx.Client(base_url=server.base_url, timeout=30) for _ in range(4)]
    yield made
    for client in made:
        client.close()


# --- the property: random conversations from concurrent writers ---


@dataclass(frozen=True)
class Plan:
    epoch: str
    writers: int
    steps: tuple[tuple[int, Operation], ...]
    """Each operation with the slot (tenant and session) it acts on."""
    pause: int
    """Steps before the check in the middle."""
    fold_in_middle: bool
    cuts: tuple[tuple[int, int, int], ...]
    """Ranges charted: (start, length) in seconds into the window, and microseconds off."""


ats = st.integers(-(WINDOW // timedelta(seconds=1)) // 5, WINDOW // timedelta(seconds=1)).map(
    lambda at: None if at < 0 else at
)
turns = st.one_of(
    st.builds(Turn, kind=st.just("user"), at=ats),
    st.builds(
        Turn,
        kind=st.just("assistant"),
        at=ats,
        usage=st.none() | st.tuples(st.integers(0, 5000), st.integers(0, 2000), st.integers(0, 800)),
        latency_ms=st.none() | st.integers(1, 20_000),
        tools=st.lists(st.sampled_from(TOOLS), max_size=2).map(tuple),
    ),
    st.builds(
        Turn,
        kind=st.just("results"),
        at=ats,
        errors=st.lists(st.booleans(), min_size=1, max_size=2).map(tuple),
    ),
)
appends = st.builds(
    Append,
    agent=st.sampled_from(AGENTS),
    turns=st.lists(turns, min_size=1, max_size=6).map(tuple),
    batch=st.booleans(),
)
teams = st.sampled_from((*TEAMS, None))
redactions = st.builds(Redact, agent=st.sampled_from(AGENTS), pick=st.integers(0, 20), how=st.integers(0, 3))
message_deletes = st.builds(DeleteMessage, agent=st.sampled_from(AGENTS), pick=st.integers(0, 20))
snapshots = st.builds(
    WriteSnapshot, keep=st.integers(0, 8), turns=st.lists(turns, max_size=5).map(tuple), at=ats
)
# Strategies repeated are drawn more often: mostly messages, then redactions, deletes and snapshots.
operations = st.one_of(
    appends,
    appends,
    appends,
    appends,
    redactions,
    message_deletes,
    snapshots,
    redactions,
    message_deletes,
    snapshots,
    st.builds(CreateSession, team=teams),
    st.builds(CreateAgent, agent=st.sampled_from(AGENTS)),
    st.builds(DeleteAgent, agent=st.sampled_from((*AGENTS, SNAPSHOT_AGENT))),
    st.builds(Relabel, team=teams),
    st.just(DeleteSession()),
    st.just(DeleteSnapshot()),
)
slots = st.integers(0, SLOTS - 1)
cuts = st.tuples(
    st.integers(-7200, WINDOW // timedelta(seconds=1) - 3600),
    st.integers(900, WINDOW // timedelta(seconds=1)),
    st.integers(0, 999_999),
)


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    # Conversations first, so that the operations after them have something to act on.
    steps = draw(st.lists(st.tuples(slots, appends), min_size=2, max_size=6))
    steps += draw(st.lists(st.tuples(slots, operations), min_size=2, max_size=20))
    return Plan(
        epoch=draw(st.sampled_from(("live", "live", *TRANSITIONS))),
        writers=draw(st.integers(2, 4)),
        steps=tuple(steps),
        pause=draw(st.integers(0, len(steps))),
        fold_in_middle=draw(st.booleans()),
        cuts=(draw(cuts), draw(cuts)),
    )


def run_writers(
    steps: Sequence[tuple[int, Operation]],
    models: list[SessionModel],
    writers: list[list[Writer]],
    window: Window,
) -> None:
    """The steps, each slot's in order, by as many writers at once as ``writers`` has (a slot is
    always written by the same one, so an agent's messages keep their order)."""
    mine: list[list[tuple[int, Operation]]] = [[] for _ in writers]
    for slot, op in steps:
        mine[slot % len(writers)].append((slot, op))

    def write(n: int) -> None:
        for slot, op in mine[n]:
            models[slot].apply(op, writers[n][slot // SESSIONS_PER_TENANT], window)

    with ThreadPoolExecutor(len(writers)) as pool:
        for running in [pool.submit(write, n) for n in range(len(writers))]:
            running.result()


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(plan=plans())
def test_served_statistics_equal_the_rows_under_random_concurrent_writes(
    plan: Plan, http: httpx.Client, raw: RawRows, clients: list[httpx.Client]
) -> None:
    """Checked in the middle of the writes (with none under way), right after them, and after the
    fold; the messages stored are also the ones the writers' models say they wrote."""
    prefix = f"exact-{uuid.uuid4().hex[:12]}"
    tenants = [f"{prefix}-t{n}" for n in range(2)]
    window = window_of(plan.epoch)
    reads = reads_for(
        window,
        [
            (
                window.start + timedelta(seconds=start, microseconds=micro),
                window.start + timedelta(seconds=start + length),
            )
            for start, length, micro in plan.cuts
        ],
    )
    models = [
        SessionModel(f"{prefix}-s{slot % SESSIONS_PER_TENANT}", TEAMS[slot % len(TEAMS)])
        for slot in range(SLOTS)
    ]
    writers = [[Writer(client, tenant) for tenant in tenants] for client in clients[: plan.writers]]

    def check(when: str) -> None:
        stored = assert_served_equals_rows(http, raw, prefix, tenants, reads, when)
        written = {key for n, m in enumerate(models) for key in m.stored(tenants[n // SESSIONS_PER_TENANT])}
        found = {(m.tenant, m.session_id, m.agent_id, m.message_id) for m in stored}
        assert found == written, (
            f"{when}: stored, not written {found - written}; not stored {written - found}"
        )

    try:
        run_writers(plan.steps[: plan.pause], models, writers, window)
        check("in the middle of the writes")
        if plan.fold_in_middle:  # the writes after it then change folded buckets
            raw.wait_for_fold()
        run_writers(plan.steps[plan.pause :], models, writers, window)
        check("right after the writes")
        if raw.wait_for_fold():
            check("after the fold")
    finally:
        remove_sessions(http, raw, prefix)


# --- each kind of write, in two tenants, checked right after it ---


class Scene:
    """Two fresh tenants sharing session ids, written one after the other, and checked after each write."""

    def __init__(self, http: httpx.Client, raw: RawRows) -> None:
        self.http, self.raw = http, raw
        self.prefix = f"exact-{uuid.uuid4().hex[:12]}"
        self.tenants = [f"{self.prefix}-t{n}" for n in range(2)]
        self.now = datetime.now(UTC)
        window = Window(self.now - WINDOW, self.now, live=True)
        self.reads = reads_for(
            window,
            [
                (
                    window.start + timedelta(hours=5, minutes=7, seconds=13, microseconds=500),
                    self.now - timedelta(hours=3, minutes=11),
                ),
                (
                    window.start + timedelta(hours=26, minutes=45),
                    window.start + timedelta(hours=50, minutes=20, microseconds=1),
                ),
            ],
        )
        self.session = f"{self.prefix}-s"

    def writer(self, tenant: int) -> Writer:
        return Writer(self.http, self.tenants[tenant])

    def ago(self, delta: timedelta) -> str:
        return (self.now - delta).isoformat()

    def check(self, when: str) -> list[StoredMessage]:
        return assert_served_equals_rows(self.http, self.raw, self.prefix, self.tenants, self.reads, when)

    def fold(self) -> None:
        """Lets the background fold take in what is written (if the server has one): later writes
        then change buckets already folded."""
        self.raw.wait_for_fold()

    def settle(self) -> None:
        """Checks the answers once everything written is folded (if the server folds)."""
        if self.raw.wait_for_fold():
            self.check("after the fold")

    def conversation(self, tenant: int, agent: str = "a1", team: str = "a", scale: int = 1) -> None:
        """A session of the tenant: a turn two days ago (lookup fails, refund succeeds), one an hour
        ago, and a question still unanswered now; ``scale`` sets the tenants' tokens apart."""
        w = self.writer(tenant)
        w.create_session(self.session, team_labels(team))
        w.create_agent(self.session, agent)
        turn = [
            {
                "messageId": 0,
                "message": user("refund please"),
                "createdAt": self.ago(timedelta(days=2, minutes=3)),
            },
            {
                "messageId": 1,
                "message": assistant(
                    tools=[("c1", "lookup", {}), ("c2", "refund", {})],
                    usage=(100 * scale, 20 * scale, 120 * scale),
                    cache=(7, 0),
                    latency_ms=900 * scale,
                ),
                "createdAt": self.ago(timedelta(days=2, minutes=2, seconds=30)),
            },
            {
                "messageId": 2,
                "message": tool_results(("c1", "error"), ("c2", "success")),
                "createdAt": self.ago(timedelta(days=2, minutes=1)),
            },
            {
                "messageId": 3,
                "message": assistant("done", usage=(40, 9 * scale, 49), latency_ms=120),
                "createdAt": self.ago(timedelta(hours=1, seconds=17)),
            },
            {"messageId": 4, "message": user("thanks")},
        ]
        w.append(self.session, agent, turn)


@pytest.fixture
def scene(http: httpx.Client, raw: RawRows) -> Iterator[Scene]:
    made = Scene(http, raw)
    yield made
    remove_sessions(http, raw, made.prefix)


def both_tenants(scene: Scene, write: Callable[[int], object], when: str) -> None:
    """``write`` in the first tenant, checked, then in the second, checked."""
    for tenant in range(2):
        write(tenant)
        scene.check(f"{when} in tenant {tenant}")


def test_an_agents_turn_shows_at_once(scene: Scene) -> None:
    both_tenants(scene, lambda t: scene.conversation(t, scale=t + 1), "a new conversation")
    scene.fold()

    def turn(tenant: int) -> None:
        w = scene.writer(tenant)
        w.append(scene.session, "a1", [{"messageId": 5, "message": user("one more")}], batch=False)
        scene.check(f"a question in tenant {tenant}")
        answer = assistant(tools=[("c3", "search", {})], usage=(5, 6, 11), latency_ms=2500 + tenant)
        w.append(scene.session, "a1", [{"messageId": 6, "message": answer}], batch=False)
        scene.check(f"an answer calling a tool in tenant {tenant}")
        w.append(scene.session, "a1", [{"messageId": 7, "message": tool_results(("c3", "error"))}])

    both_tenants(scene, turn, "the tool's result")
    scene.settle()


def test_messages_backdated_into_folded_buckets_count_at_once(scene: Scene) -> None:
    both_tenants(scene, lambda t: scene.conversation(t, scale=t + 1), "a new conversation")
    scene.fold()

    def backdate(tenant: int) -> None:
        w = scene.writer(tenant)
        late = [
            # into the bucket of the turn two days ago, and into an hour and a day nothing was in
            {
                "messageId": 5,
                "message": assistant(tools=[("c4", "lookup", {})], usage=(3, 4, 7), latency_ms=10_000),
                "createdAt": scene.ago(timedelta(days=2, minutes=2, seconds=1)),
            },
            {
                "messageId": 6,
                "message": tool_results(("c4", "error")),
                "createdAt": scene.ago(timedelta(days=2, hours=19, minutes=52, seconds=7)),
            },
        ]
        w.append(scene.session, "a1", late[:1], batch=False)
        scene.check(f"a message backdated into a folded bucket in tenant {tenant}")
        w.append(scene.session, "a1", late[1:])

    both_tenants(scene, backdate, "a result backdated into an empty bucket")
    scene.settle()


def test_a_result_written_later_counts_at_the_time_of_its_call(scene: Scene) -> None:
    def call(tenant: int) -> None:
        w = scene.writer(tenant)
        w.create_session(scene.session, team_labels("b"))
        w.create_agent(scene.session, "a2")
        made = assistant(tools=[("c1", "refund", {})], usage=(1, 2, 3), latency_ms=33)
        w.append(
            scene.session,
            "a2",
            [{"messageId": 0, "message": made, "createdAt": scene.ago(timedelta(days=2, hours=5))}],
        )

    both_tenants(scene, call, "a call two days ago")
    scene.fold()
    # grouped by tool, its error counts in the call's bucket, two days before the result's
    both_tenants(
        scene,
        lambda t: scene.writer(t).append(
            scene.session, "a2", [{"messageId": 1, "message": tool_results(("c1", "error"))}]
        ),
        "its result now",
    )
    scene.settle()


def test_deleting_a_message_an_agent_or_a_session_takes_it_out_at_once(scene: Scene) -> None:
    def two_agents(tenant: int) -> None:
        scene.conversation(tenant, "a1", scale=tenant + 1)
        w = scene.writer(tenant)
        w.create_agent(scene.session, "a2")
        answer = assistant(tools=[("c9", "search", {})], usage=(11, 12, 23), latency_ms=700)
        w.append(
            scene.session,
            "a2",
            [{"messageId": 0, "message": answer, "createdAt": scene.ago(timedelta(days=1, hours=7))}],
        )

    both_tenants(scene, two_agents, "two agents")
    scene.fold()
    both_tenants(
        scene, lambda t: scene.writer(t).delete_message(scene.session, "a1", 2), "the error result deleted"
    )
    both_tenants(scene, lambda t: scene.writer(t).delete_message(scene.session, "a1", 1), "the calls deleted")
    scene.fold()
    both_tenants(scene, lambda t: scene.writer(t).delete_agent(scene.session, "a2"), "an agent deleted")
    scene.fold()
    both_tenants(scene, lambda t: scene.writer(t).delete_session(scene.session), "the session deleted")
    assert scene.raw.messages(scene.prefix) == []
    scene.settle()


def test_redactions_and_updates_that_change_tool_calls_or_tokens_count_at_once(scene: Scene) -> None:
    both_tenants(scene, lambda t: scene.conversation(t, scale=t + 1), "a new conversation")
    scene.fold()
    calls = assistant(
        tools=[("c1", "lookup", {}), ("c2", "refund", {})], usage=(100, 20, 120), cache=(7, 0), latency_ms=900
    )
    results = tool_results(("c1", "error"), ("c2", "success"))
    redactions = [
        ("the lookup call redacted away", 1, calls, assistant(tools=[("c2", "refund", {})])),
        ("the refund call renamed", 1, calls, assistant(tools=[("c2", "search", {})])),
        ("the refund result flipped to an error", 2, results, tool_results(("c1", "error"), ("c2", "error"))),
        ("every result redacted away", 2, results, user("[redacted]")),
        ("the answer's own tokens and latency rewritten", 1, corrected(calls), None),
    ]
    for n, (when, message_id, message, redaction) in enumerate(redactions):

        def redact(
            tenant: int, message_id: int = message_id, message: Any = message, redaction: Any = redaction
        ) -> None:
            scene.writer(tenant).redact(scene.session, "a1", message_id, message, redaction)

        both_tenants(scene, redact, when)
        if n % 2:  # the next one changes folded buckets (and the one after, a bucket not folded yet)
            scene.fold()
    scene.settle()


def test_snapshots_that_rewrite_messages_count_at_once(scene: Scene) -> None:
    first = [
        user("hello"),
        assistant(tools=[("s1", "lookup", {})], usage=(30, 5, 35), latency_ms=400),
        tool_results(("s1", "success")),
        assistant("it is there", usage=(50, 8, 58), latency_ms=600),
    ]
    rewritten = [
        *first[:2],
        tool_results(("s1", "error")),
        assistant("sorry", usage=(60, 9, 69), latency_ms=5000),
    ]

    def labelled_session(tenant: int) -> None:
        scene.writer(tenant).create_session(scene.session, team_labels("a"))

    both_tenants(scene, labelled_session, "a session")
    both_tenants(
        scene,
        lambda t: scene.writer(t).write_snapshot(
            scene.session, first, scene.ago(timedelta(days=2, minutes=50))
        ),
        "a first snapshot two days ago",
    )
    scene.fold()
    # the first two messages stay (with their time); from the third on they are replaced
    both_tenants(
        scene,
        lambda t: scene.writer(t).write_snapshot(
            scene.session, rewritten, scene.ago(timedelta(hours=30, minutes=1))
        ),
        "a snapshot rewriting the last two",
    )
    scene.fold()
    both_tenants(
        scene,
        lambda t: scene.writer(t).write_snapshot(scene.session, first[:1], scene.ago(timedelta(hours=2))),
        "a snapshot keeping only the first",
    )
    both_tenants(scene, lambda t: scene.writer(t).delete_snapshot(scene.session), "the snapshot deleted")
    assert scene.raw.messages(scene.prefix) == []
    scene.settle()


def test_relabelling_a_session_moves_its_messages_between_labels_at_once(scene: Scene) -> None:
    """Not among the writes the issue lists, but label charts and filters read the session's labels
    as they are now: a rollup keyed by label has to follow them."""
    both_tenants(scene, lambda t: scene.conversation(t, team="a", scale=t + 1), "a new conversation")
    scene.fold()
    both_tenants(scene, lambda t: scene.writer(t).relabel(scene.session, team_labels("b")), "team a to b")
    both_tenants(scene, lambda t: scene.writer(t).relabel(scene.session, {}), "no team")
    scene.settle()


FORK = """mutation($source: String!, $new: String!) {
  forkSession(sourceSessionId: $source, newSessionId: $new) { sessionId }
}"""


def test_a_forked_session_counts_at_once(scene: Scene) -> None:
    """Not among the writes the issue lists: a fork copies the messages with their times, into
    buckets already folded."""
    both_tenants(scene, lambda t: scene.conversation(t, scale=t + 1), "a new conversation")
    scene.fold()
    both_tenants(
        scene,
        lambda t: scene.writer(t).call(FORK, source=scene.session, new=f"{scene.session}-fork"),
        "a fork",
    )
    scene.settle()
