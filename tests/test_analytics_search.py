"""``searchMessages``: PostgreSQL full-text search (English stemming, web search syntax) over the
text the agent sees, best matches first or newest first, with highlighted snippets, paged with
cursors of their order."""

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.api_calls import (
    DELETE_SESSION,
    UPDATE_MESSAGE,
    GraphQLCall,
    NewId,
    append_messages,
    assert_error,
    data_of,
)
from tests.conftest import RunningServer
from tests.strands_messages import ask, assistant, at, conversation, user

SEARCH = """
query(
  $q: String!, $f: ConversationFilter, $first: Int! = 20, $after: String, $order: SearchOrder! = RELEVANCE
) {
  searchMessages(query: $q, filter: $f, first: $first, after: $after, orderBy: $order) {
    edges { cursor rank snippet node { sessionId agentId messageId text isRedacted createdAt } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""
REDACTED = {"role": "user", "content": [{"text": "[User input redacted.]"}]}
NINE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Corpus:
    prefix: str

    def search(self, graphql: GraphQLCall, query: str, **variables: Any) -> dict[str, Any]:
        f = {"sessionIdPrefix": self.prefix, **variables.pop("f", {})}
        found: dict[str, Any] = ask(graphql, SEARCH, q=query, f=f, **variables)["searchMessages"]
        return found

    def name(self, edge: dict[str, Any]) -> str:
        """A match as x0: session x, message 0."""
        node = edge["node"]
        return f"{node['sessionId'].removeprefix(self.prefix + '-')}{node['messageId']}"

    def hits(self, graphql: GraphQLCall, query: str, **variables: Any) -> list[str]:
        """The matches, best first."""
        return [self.name(edge) for edge in self.search(graphql, query, **variables)["edges"]]


@pytest.fixture(scope="module")
def corpus(graphql: GraphQLCall) -> Corpus:
    prefix = f"search-{uuid.uuid4().hex[:12]}"
    # Times (minutes past 09:00) put the newest matches in another order than the best ones; y0
    # was written in the same microsecond as x1.
    shop = [
        (0, user("I want a refund for the broken blender")),
        (1, assistant("Refunds take five days. Refund, refund, refund.")),
        (2, user("The blender was broken when it arrived")),
        (3, assistant("Your invoice is attached")),
        (4, user("Where is my receipt?")),
        (5, user("my card number is 4111")),  # redacted below
        (30, assistant("Refunding now.")),
    ]
    messages = [at(i, message, _nine(minute)) for i, (minute, message) in enumerate(shop)]
    messages[5]["redactMessage"] = REDACTED
    conversation(graphql, f"{prefix}-x", "support", messages)
    billing = [
        (1, user("refund please")),
        (10, assistant("Issuing the refund", tools=[("t-1", "issue_refund", {})])),
    ]
    conversation(
        graphql,
        f"{prefix}-y",
        "billing",
        [at(i, message, _nine(minute)) for i, (minute, message) in enumerate(billing)],
        labels={"user": "bo"},
    )
    return Corpus(prefix)


def _nine(minutes: int) -> str:
    return (NINE + timedelta(minutes=minutes)).isoformat()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("refunds", ["x1", "y1", "y0", "x6", "x0"]),  # refund, refunds, refunding: one stem
        ('"broken blender"', ["x0"]),  # a phrase: x2 has both words, apart
        ("blender broken", ["x0", "x2"]),  # every word, anywhere; nearer together ranks higher
        ("invoice or receipt", ["x4", "x3"]),
        ("refund -blender", ["x1", "y1", "y0", "x6"]),
        ('"broken blender" or invoice', ["x3", "x0"]),
        ("REFUNDED", ["x1", "y1", "y0", "x6", "x0"]),
    ],
)
def test_web_search_syntax_with_english_stemming(
    graphql: GraphQLCall, corpus: Corpus, query: str, expected: list[str]
) -> None:
    assert corpus.hits(graphql, query) == expected


def test_best_matches_come_first_and_ties_keep_a_stable_order(graphql: GraphQLCall, corpus: Corpus) -> None:
    edges = corpus.search(graphql, "refund")["edges"]

    ranks = [edge["rank"] for edge in edges]
    # ts_rank_cd counts covers: four mentions in x1, one in each of the others
    assert ranks == pytest.approx([0.4, 0.1, 0.1, 0.1, 0.1])
    assert corpus.hits(graphql, "refund") == ["x1", "y1", "y0", "x6", "x0"]  # ties: later key first


def test_each_match_names_its_message_and_highlights_the_words_found(
    graphql: GraphQLCall, corpus: Corpus
) -> None:
    edges = corpus.search(graphql, "refunding blender")["edges"]
    (match,) = edges

    assert match["node"]["sessionId"] == f"{corpus.prefix}-x"
    assert (match["node"]["agentId"], match["node"]["messageId"]) == ("support", 0)
    assert match["node"]["text"] == "I want a refund for the broken blender"
    # fragments start and end at words that are not stop words ("I")
    assert match["snippet"] == "want a **refund** for the broken **blender**"
    (billing,) = corpus.search(graphql, "issuing")["edges"]
    assert (billing["node"]["sessionId"], billing["node"]["agentId"]) == (f"{corpus.prefix}-y", "billing")
    assert billing["snippet"] == "**Issuing** the refund"


def test_a_long_text_gives_fragments_around_the_matches(graphql: GraphQLCall, new_id: NewId) -> None:
    prefix = new_id("search")
    filler = " ".join(f"word{i}" for i in range(40))
    conversation(graphql, f"{prefix}-x", "a", [at(0, user(f"tulips first {filler} tulips again"))])

    (match,) = Corpus(prefix).search(graphql, "tulip")["edges"]

    fragments = match["snippet"].split(" … ")
    assert len(fragments) == 2, match["snippet"]
    assert fragments[0].startswith("**tulips** first word0")
    assert fragments[1].endswith("word39 **tulips** again")


def test_pages_follow_one_another_in_rank_order(graphql: GraphQLCall, corpus: Corpus) -> None:
    first = corpus.search(graphql, "refund", first=2)
    second = corpus.search(graphql, "refund", first=2, after=first["pageInfo"]["endCursor"])
    third = corpus.search(graphql, "refund", first=2, after=second["pageInfo"]["endCursor"])

    pages = [first, second, third]
    assert [[corpus.name(edge) for edge in page["edges"]] for page in pages] == [
        ["x1", "y1"],
        ["y0", "x6"],
        ["x0"],
    ]
    assert [p["pageInfo"]["hasNextPage"] for p in pages] == [True, True, False]
    assert [p["pageInfo"]["hasPreviousPage"] for p in pages] == [False, True, True]
    for page in pages:
        assert page["pageInfo"]["startCursor"] == page["edges"][0]["cursor"]
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        ({"agentId": "billing"}, ["y1", "y0"]),
        ({"agentId": "billing", "role": "assistant"}, ["y1"]),
        ({"labels": {"user": "bo"}, "role": "user"}, ["y0"]),
        ({"toolName": "issue_refund"}, ["y1"]),
        ({"role": "assistant", "agentId": "support"}, ["x1", "x6"]),
        ({"created": {"end": "2000-01-01T00:00:00Z"}}, []),
    ],
)
def test_filters_narrow_the_matches(
    graphql: GraphQLCall, corpus: Corpus, f: dict[str, Any], expected: list[str]
) -> None:
    assert corpus.hits(graphql, "refund", f=f) == expected


def test_a_redacted_message_is_found_by_its_redaction_only(graphql: GraphQLCall, corpus: Corpus) -> None:
    assert corpus.hits(graphql, "card 4111") == []
    (match,) = corpus.search(graphql, "redacted")["edges"]

    assert corpus.hits(graphql, "redacted") == ["x5"]
    assert (match["node"]["isRedacted"], match["node"]["text"]) == (True, "[User input redacted.]")
    assert match["snippet"] == "User input **redacted**"


def test_redacting_a_message_later_takes_its_words_out_of_search(graphql: GraphQLCall, new_id: NewId) -> None:
    prefix = new_id("search")
    original = user("my secret plan about tulips")
    conversation(graphql, f"{prefix}-x", "a", [at(0, original)])
    corpus = Corpus(prefix)
    assert corpus.hits(graphql, "tulips") == ["x0"]

    redaction = {"messageId": 0, "message": original, "redactMessage": REDACTED}
    data_of(graphql(UPDATE_MESSAGE, {"sessionId": f"{prefix}-x", "agentId": "a", "message": redaction}))

    assert corpus.hits(graphql, "tulips") == []
    assert corpus.hits(graphql, "redacted input") == ["x0"]


@pytest.mark.parametrize("query", ["", "   ", "\t\n", "the and of", '""', "\x00", "!!! ???"])
def test_a_query_without_words_matches_nothing_without_an_error(
    graphql: GraphQLCall, corpus: Corpus, query: str
) -> None:
    """As PostgreSQL's websearch_to_tsquery has it: a dashboard's empty search box shows an empty
    table, not an error panel."""
    found = corpus.search(graphql, query)

    assert found["edges"] == []
    assert found["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": False,
        "startCursor": None,
        "endCursor": None,
    }


def test_a_page_holds_twenty_matches_unless_asked_for_more(graphql: GraphQLCall, new_id: NewId) -> None:
    prefix = new_id("search")
    conversation(graphql, f"{prefix}-x", "a", [at(i, user(f"tulip number {i}")) for i in range(21)])

    default = Corpus(prefix).search(graphql, "tulip")
    everything = Corpus(prefix).search(graphql, "tulip", first=21)

    assert (len(default["edges"]), default["pageInfo"]["hasNextPage"]) == (20, True)
    assert (len(everything["edges"]), everything["pageInfo"]["hasNextPage"]) == (21, False)


def test_a_nul_in_the_query_separates_words(graphql: GraphQLCall, corpus: Corpus) -> None:
    assert corpus.hits(graphql, "refund\x00please") == corpus.hits(graphql, "refund please") == ["y0"]


def test_bad_search_arguments_are_refused(
    server: RunningServer, graphql: GraphQLCall, corpus: Corpus
) -> None:
    maximum = server.settings.limits.max_page_size
    f = {"sessionIdPrefix": corpus.prefix}
    sessions_cursor = ask(graphql, "{ sessions(first: 1) { pageInfo { endCursor } } }")["sessions"][
        "pageInfo"
    ]

    error = assert_error(graphql(SEARCH, {"q": "x" * 1001, "f": f}), "BAD_USER_INPUT", "query")
    assert "1000" in error["message"]
    longest = "refund " * 142 + "refund"
    assert len(longest) == 1000
    assert len(corpus.search(graphql, longest)["edges"]) == 5
    error = assert_error(
        graphql(SEARCH, {"q": "refund", "f": f, "first": maximum + 1}), "BAD_USER_INPUT", "first"
    )
    assert str(maximum) in error["message"]
    assert_error(graphql(SEARCH, {"q": "refund", "f": f, "first": -1}), "BAD_USER_INPUT", "first")
    assert_error(graphql(SEARCH, {"q": "refund", "f": f, "after": "junk"}), "BAD_USER_INPUT", "after")
    assert_error(
        graphql(SEARCH, {"q": "refund", "f": f, "after": sessions_cursor["endCursor"]}),
        "BAD_USER_INPUT",
        "after",
    )


# --- orderBy: NEWEST ---


def in_tenant(http: httpx.Client, tenant: str) -> GraphQLCall:
    """Requests as the open server's caller confined to ``tenant`` (X-Tenant)."""

    def call(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers={"X-Tenant": tenant}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return call


@pytest.fixture(params=["every tenant", "one tenant"])
def reader(request: pytest.FixtureRequest, graphql: GraphQLCall, http: httpx.Client) -> GraphQLCall:
    """Who reads what the tests write (into the default tenant): the open server's caller, whose
    searches span every tenant, or the same confined to the default tenant. Only within a tenant does
    a newest-first search read messages back in time from the time index; across tenants it sorts
    the matches, so both ways are tried."""
    return graphql if request.param == "every tenant" else in_tenant(http, "default")


def test_newest_first_orders_matches_by_creation_time_then_by_key(
    reader: GraphQLCall, corpus: Corpus
) -> None:
    # x6 09:30, y1 09:10, then x1 and y0 both at 09:01 (ties: later key first), x0 09:00
    assert corpus.hits(reader, "refund", order="NEWEST") == ["x6", "y1", "y0", "x1", "x0"]
    assert corpus.hits(reader, "blender broken", order="NEWEST") == ["x2", "x0"]
    times = [edge["node"]["createdAt"] for edge in corpus.search(reader, "refund", order="NEWEST")["edges"]]
    assert times == sorted(times, reverse=True)


def test_relevance_stays_the_order_unless_newest_is_asked_for(graphql: GraphQLCall, corpus: Corpus) -> None:
    assert corpus.hits(graphql, "refund", order="RELEVANCE") == corpus.hits(graphql, "refund")
    assert corpus.hits(graphql, "refund") == ["x1", "y1", "y0", "x6", "x0"]


def test_newest_matches_carry_the_rank_and_snippet_of_the_best_first_search(
    reader: GraphQLCall, corpus: Corpus
) -> None:
    def shown(order: str) -> dict[str, tuple[float, str]]:
        edges = corpus.search(reader, "refund or blender", order=order)["edges"]
        return {corpus.name(edge): (edge["rank"], edge["snippet"]) for edge in edges}

    newest = shown("NEWEST")

    assert list(newest) == ["x6", "y1", "x2", "y0", "x1", "x0"]
    assert newest == shown("RELEVANCE")
    assert newest["x0"] == (pytest.approx(0.2), "want a **refund** for the broken **blender**")
    assert newest["x1"][0] == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        ({"agentId": "billing"}, ["y1", "y0"]),
        ({"agentId": "support", "role": "assistant"}, ["x6", "x1"]),
        ({"labels": {"user": "bo"}, "role": "user"}, ["y0"]),
        ({"toolName": "issue_refund"}, ["y1"]),
        # start <= createdAt < end: x6 at 09:30 and x0 at 09:00 fall outside
        ({"created": {"start": "2026-03-02T09:01:00Z", "end": "2026-03-02T09:30:00Z"}}, ["y1", "y0", "x1"]),
        ({"created": {"end": "2000-01-01T00:00:00Z"}}, []),
        ({"redacted": True}, []),
    ],
)
def test_filters_narrow_the_newest_matches(
    reader: GraphQLCall, corpus: Corpus, f: dict[str, Any], expected: list[str]
) -> None:
    assert corpus.hits(reader, "refund", f=f, order="NEWEST") == expected


def test_newest_pages_reach_every_match_once_in_order(reader: GraphQLCall, new_id: NewId) -> None:
    """Three sessions whose messages interleave in time, many written in the same microsecond: every
    tie must fall on one side of a page's end, whatever the page size."""
    prefix = new_id("search")
    expected = []
    for session in "abc":
        messages = []
        for i in range(20):
            minute = (i * 7 + ord(session)) % 9  # repeats: ties within an agent and across sessions
            said = f"tulip number {i}" if i % 4 != 3 else f"rose number {i}"
            messages.append(at(i, user(said), _nine(minute)))
            if i % 4 != 3:
                expected.append((_nine(minute), f"{prefix}-{session}", i))
        conversation(reader, f"{prefix}-{session}", "a", messages)
    expected.sort(reverse=True)
    corpus = Corpus(prefix)
    want = [f"{session_id.removeprefix(prefix + '-')}{i}" for _, session_id, i in expected]

    for size in (1, 7, 45, 46):
        seen: list[str] = []
        pages = []
        after = None
        while True:
            page = corpus.search(reader, "tulips", first=size, after=after, order="NEWEST")
            pages.append(page["pageInfo"])
            seen += [corpus.name(edge) for edge in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
            assert len(pages) <= 45, "paging does not end"
        assert len(want) == 45
        assert seen == want, f"pages of {size}"
        assert [p["hasPreviousPage"] for p in pages] == [False] + [True] * (len(pages) - 1)
        assert len(pages) == -(-45 // size)


def test_a_newest_cursor_stays_put_while_newer_matches_arrive(reader: GraphQLCall, new_id: NewId) -> None:
    prefix = new_id("search")
    conversation(reader, f"{prefix}-x", "a", [at(i, user(f"tulip {i}"), _nine(i)) for i in range(6)])
    corpus = Corpus(prefix)
    first = corpus.search(reader, "tulip", first=3, order="NEWEST")

    append_messages(reader, f"{prefix}-x", "a", [at(6, user("tulip newest"), _nine(60))])
    second = corpus.search(reader, "tulip", first=3, after=first["pageInfo"]["endCursor"], order="NEWEST")

    assert [corpus.name(edge) for edge in first["edges"]] == ["x5", "x4", "x3"]
    assert [corpus.name(edge) for edge in second["edges"]] == ["x2", "x1", "x0"]
    assert second["pageInfo"]["hasNextPage"] is False
    assert corpus.hits(reader, "tulip", first=1, order="NEWEST") == ["x6"]


def test_a_cursor_of_one_search_order_is_refused_by_the_other(reader: GraphQLCall, corpus: Corpus) -> None:
    f = {"sessionIdPrefix": corpus.prefix}
    best = corpus.search(reader, "refund", first=2)["pageInfo"]["endCursor"]
    newest = corpus.search(reader, "refund", first=2, order="NEWEST")["pageInfo"]["endCursor"]

    for cursor, order in ((best, "NEWEST"), (newest, "RELEVANCE")):
        body = reader(SEARCH, {"q": "refund", "f": f, "after": cursor, "order": order})
        error = assert_error(body, "BAD_USER_INPUT", "after")
        assert "another order" in error["message"]
        assert body["data"] is None
    # each still pages its own order
    assert corpus.hits(reader, "refund", after=best) == ["y0", "x6", "x0"]
    assert corpus.hits(reader, "refund", after=newest, order="NEWEST") == ["y0", "x1", "x0"]


def test_cursors_that_are_no_newest_search_cursor_are_refused(graphql: GraphQLCall, corpus: Corpus) -> None:
    f = {"sessionIdPrefix": corpus.prefix}
    listed = ask(graphql, "{ messages(first: 1) { pageInfo { endCursor } } }")["messages"]["pageInfo"]
    forged = [
        base64.urlsafe_b64encode(f"search-newest:{body}".encode()).decode()
        for body in (
            '["not a time", "s", "default", "a", 1]',
            '["2026-03-02T09:00:00+00:00", "s", "default", "a"]',
            '["2026-03-02T09:00:00+00:00", "s", "default", "a", -1]',
            '["2026-03-02T09:00:00+00:00", "s", "default", "a", 99999999999]',
            '["2026-03-02T09:00:00+00:00", "s", "no tenant!", "a", 1]',
            '["2026-03-02T09:00:00+00:00", "", "default", "a", 1]',
            "not json",
        )
    ]

    for cursor in ["junk", listed["endCursor"], *forged]:
        body = graphql(SEARCH, {"q": "refund", "f": f, "after": cursor, "order": "NEWEST"})
        error = assert_error(body, "BAD_USER_INPUT", "after")
        assert "not a cursor this API returned" in error["message"], cursor


def test_newest_search_of_one_tenant_never_shows_another_tenants_messages(
    http: httpx.Client, new_id: NewId
) -> None:
    ours, theirs = new_id("tenant"), new_id("tenant")
    shared = new_id("shared")
    try:
        # the same session id in both tenants, their messages interleaved in time
        for tenant, minutes in ((ours, (0, 2, 4)), (theirs, (1, 3, 5))):
            said = [at(i, user(f"tulip of {tenant}"), _nine(minute)) for i, minute in enumerate(minutes)]
            conversation(in_tenant(http, tenant), f"{shared}-x", "a", said)
        corpus = Corpus(shared)

        first = corpus.search(in_tenant(http, ours), "tulip", first=2, order="NEWEST")
        rest = corpus.search(
            in_tenant(http, theirs), "tulip", first=5, after=first["pageInfo"]["endCursor"], order="NEWEST"
        )
    finally:
        # Listings across tenants elsewhere in the suite expect every session id once.
        for tenant in (ours, theirs):
            in_tenant(http, tenant)(DELETE_SESSION, {"sessionId": f"{shared}-x"})

    assert [(corpus.name(edge), edge["node"]["text"]) for edge in first["edges"]] == [
        ("x2", f"tulip of {ours}"),
        ("x1", f"tulip of {ours}"),
    ]
    # a cursor only says where a listing resumes: in the other tenant, that tenant's older rows
    assert [(corpus.name(edge), edge["node"]["text"]) for edge in rest["edges"]] == [
        ("x0", f"tulip of {theirs}")
    ]
