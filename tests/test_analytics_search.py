"""``searchMessages``: PostgreSQL full-text search (English stemming, web search syntax) over the
text the agent sees, best matches first, with highlighted snippets, paged with cursors."""

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from tests.analytics_helpers import ask, assistant, at, conversation, user
from tests.api_helpers import UPDATE_MESSAGE, GraphQLCall, NewId, assert_error, data_of
from tests.conftest import RunningServer

SEARCH = """
query($q: String!, $f: ConversationFilter, $first: Int! = 20, $after: String) {
  searchMessages(query: $q, filter: $f, first: $first, after: $after) {
    edges { cursor rank snippet node { sessionId agentId messageId text isRedacted } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""
REDACTED = {"role": "user", "content": [{"text": "[User input redacted.]"}]}


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
    shop = [
        user("I want a refund for the broken blender"),
        assistant("Refunds take five days. Refund, refund, refund."),
        user("The blender was broken when it arrived"),
        assistant("Your invoice is attached"),
        user("Where is my receipt?"),
        user("my card number is 4111"),  # redacted below
        assistant("Refunding now."),
    ]
    messages = [at(i, message) for i, message in enumerate(shop)]
    messages[5]["redactMessage"] = REDACTED
    conversation(graphql, f"{prefix}-x", "support", messages)
    billing = [user("refund please"), assistant("Issuing the refund", tools=[("t-1", "issue_refund", {})])]
    conversation(
        graphql, f"{prefix}-y", "billing", [at(i, m) for i, m in enumerate(billing)], labels={"user": "bo"}
    )
    return Corpus(prefix)


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
