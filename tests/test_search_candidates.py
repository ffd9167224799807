"""``searchMessages`` best first ranks the newest ``SESSION_GRAPHQL_SEARCH_CANDIDATES`` matches of the
caller's tenant and filter, not every match: exact when fewer match, or when a time range narrows
them below the bound; pages of the ranking neither repeat nor skip a match.

Private servers with small bounds (and one without, ranking every match) read what the shared
server wrote, on the same database.
"""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from graphql_api.settings import Limits, SettingsError
from tests.api_calls import GraphQLCall, NewId, data_of
from tests.conftest import RunningServer
from tests.strands_messages import at, conversation, user
from tests.test_analytics_search import in_tenant
from tests.test_limits import limited_server

CANDIDATES = 5
SEARCH = """
query($q: String!, $f: ConversationFilter, $first: Int! = 20, $after: String) {
  searchMessages(query: $q, filter: $f, first: $first, after: $after) {
    edges { cursor rank node { sessionId messageId } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
NINE = datetime(2026, 4, 7, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def few(database_url: str) -> Iterator[RunningServer]:
    """Ranks the newest five matches."""
    with limited_server(database_url, search_candidates=CANDIDATES, rate_per_second=0) as running:
        yield running


@pytest.fixture(scope="module")
def every(database_url: str) -> Iterator[RunningServer]:
    """Ranks every match, as best-first search did before it was bounded."""
    with limited_server(database_url, search_candidates=0, rate_per_second=0) as running:
        yield running


def _minute(minutes: int) -> str:
    return (NINE + timedelta(minutes=minutes)).isoformat()


def search(
    server: RunningServer, query: str, prefix: str, *, tenant: str | None = None, **variables: Any
) -> dict[str, Any]:
    """One page of matches in sessions named ``prefix``-..., as the caller confined to ``tenant``
    (None: the open server's caller, reading every tenant)."""
    f = {"sessionIdPrefix": prefix, **variables.pop("f", {})}
    headers = {} if tenant is None else {"X-Tenant": tenant}
    response = httpx.post(
        server.url, json={"query": SEARCH, "variables": {"q": query, "f": f, **variables}}, headers=headers
    )
    assert response.status_code == 200, response.text
    found: dict[str, Any] = data_of(response.json())["searchMessages"]
    return found


def names(page: dict[str, Any], prefix: str) -> list[str]:
    """Matches as x7: session x, message 7."""
    return [
        f"{edge['node']['sessionId'].removeprefix(prefix + '-')}{edge['node']['messageId']}"
        for edge in page["edges"]
    ]


def hits(server: RunningServer, query: str, prefix: str, **variables: Any) -> list[str]:
    return names(search(server, query, prefix, **variables), prefix)


def every_page(server: RunningServer, query: str, prefix: str, size: int, **variables: Any) -> list[str]:
    """The matches of all pages of ``size``, following the cursors."""
    seen: list[str] = []
    after = None
    for _ in range(100):
        page = search(server, query, prefix, first=size, after=after, **variables)
        seen += names(page, prefix)
        if not page["pageInfo"]["hasNextPage"]:
            return seen
        after = page["pageInfo"]["endCursor"]
    raise AssertionError("paging does not end")


@pytest.fixture(scope="module")
def tulips(graphql: GraphQLCall) -> str:
    """Session x: twelve messages a minute apart, each older one mentioning tulips once more than
    the next (so ranking older ones higher), every third roses as well (x0 four, x3 three, x6 two,
    x9 one). Session y: five newer tulips."""
    prefix = f"candidates-{uuid.uuid4().hex[:12]}"
    said = [
        at(
            i,
            user(" ".join(["tulips"] * (12 - i) + ["roses"] * (4 - i // 3 if i % 3 == 0 else 0))),
            _minute(i),
        )
        for i in range(12)
    ]
    conversation(graphql, f"{prefix}-x", "a", said)
    conversation(graphql, f"{prefix}-y", "a", [at(i, user("one tulip"), _minute(60 + i)) for i in range(5)])
    return prefix


def test_the_newest_matches_are_ranked_not_every_match(
    few: RunningServer, every: RunningServer, tulips: str
) -> None:
    # x0 has the most tulips, but only the newest five of session x are candidates
    assert hits(every, "tulip", tulips, f={"sessionId": f"{tulips}-x"}) == [f"x{i}" for i in range(12)]
    page = search(few, "tulip", tulips, f={"sessionId": f"{tulips}-x"})

    assert names(page, tulips) == ["x7", "x8", "x9", "x10", "x11"]
    assert page["pageInfo"]["hasNextPage"] is False


def test_the_filter_chooses_the_candidates_before_they_are_ranked(few: RunningServer, tulips: str) -> None:
    # y's five tulips are the newest of all: without the session filter, x has no candidate left
    assert sorted(hits(few, "tulip", tulips)) == ["y0", "y1", "y2", "y3", "y4"]
    assert hits(few, "tulip", tulips, f={"sessionId": f"{tulips}-x"}) == ["x7", "x8", "x9", "x10", "x11"]


def test_the_ranking_is_exact_when_fewer_than_the_candidates_match(
    few: RunningServer, every: RunningServer, tulips: str
) -> None:
    # four messages with roses: all of them are candidates, the oldest ranking first
    assert hits(few, "rose", tulips) == hits(every, "rose", tulips) == ["x0", "x3", "x6", "x9"]


def test_the_ranking_is_exact_when_a_time_range_narrows_the_matches_below_the_candidates(
    few: RunningServer, every: RunningServer, tulips: str
) -> None:
    f = {"created": {"start": _minute(0), "end": _minute(4)}}

    assert hits(few, "tulip", tulips, f=f) == hits(every, "tulip", tulips, f=f) == ["x0", "x1", "x2", "x3"]


@pytest.fixture(scope="module")
def ties(graphql: GraphQLCall) -> tuple[str, list[str]]:
    """Three sessions of nine messages whose times repeat across and within sessions and whose
    texts repeat (equal ranks); returns the prefix and the expected ranking of the newest seven
    matches, computed from the ranks the unbounded server gives."""
    prefix = f"candidates-{uuid.uuid4().hex[:12]}"
    created: dict[str, str] = {}
    for session in "abc":
        messages = []
        for i in range(9):
            minute = (i * 5 + ord(session)) % 4
            text = " ".join(["daffodil"] * (1 + (i + ord(session)) % 3))
            messages.append(at(i, user(text), _minute(minute)))
            created[f"{session}{i}"] = _minute(minute)
        conversation(graphql, f"{prefix}-{session}", "a", messages)
    return prefix, sorted(created, key=lambda name: (created[name], name[0], int(name[1:])), reverse=True)[:7]


def test_pages_of_the_ranking_reach_each_candidate_once_in_rank_order(
    every: RunningServer, database_url: str, ties: tuple[str, list[str]]
) -> None:
    prefix, newest_seven = ties
    ranks = {
        f"{edge['node']['sessionId'].removeprefix(prefix + '-')}{edge['node']['messageId']}": edge["rank"]
        for edge in search(every, "daffodil", prefix, first=27)["edges"]
    }
    assert len(ranks) == 27 and len(set(ranks.values())) == 3
    expected = sorted(newest_seven, key=lambda name: (ranks[name], name[0], int(name[1:])), reverse=True)

    with limited_server(database_url, search_candidates=7, rate_per_second=0) as seven:
        for size in (1, 2, 3, 7, 8):
            assert every_page(seven, "daffodil", prefix, size) == expected, f"pages of {size}"


def test_each_tenant_has_its_own_candidates(few: RunningServer, http: httpx.Client, new_id: NewId) -> None:
    prefix = new_id("candidates")
    newer, older = new_id("tenant"), new_id("tenant")
    said = [at(i, user("tulip"), _minute(60 + i)) for i in range(6)]
    conversation(in_tenant(http, newer), f"{prefix}-n", "a", said)
    conversation(
        in_tenant(http, older), f"{prefix}-o", "a", [at(i, user("tulip"), _minute(i)) for i in range(3)]
    )

    # the newer tenant's six matches take no place among the older tenant's candidates
    assert sorted(hits(few, "tulip", prefix, tenant=older)) == ["o0", "o1", "o2"]
    assert sorted(hits(few, "tulip", prefix, tenant=newer)) == ["n1", "n2", "n3", "n4", "n5"]
    # read across tenants, the newest five of all are the candidates
    assert sorted(hits(few, "tulip", prefix)) == ["n1", "n2", "n3", "n4", "n5"]


def test_the_bound_is_read_from_the_environment_and_checked() -> None:
    assert Limits().search_candidates == 10_000
    assert Limits.from_env({"SESSION_GRAPHQL_SEARCH_CANDIDATES": "500"}).search_candidates == 500
    assert Limits.from_env({"SESSION_GRAPHQL_SEARCH_CANDIDATES": "0"}).search_candidates == 0
    for wrong in ("-1", "many", "10000001"):
        with pytest.raises(SettingsError, match="SESSION_GRAPHQL_SEARCH_CANDIDATES"):
            Limits.from_env({"SESSION_GRAPHQL_SEARCH_CANDIDATES": wrong})
