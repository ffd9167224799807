"""The Grafana dashboard (grafana/dashboards/strands-conversations.json), run as Grafana runs it.

Each panel's Infinity query is read from the JSON; its variables are filled in as Grafana fills them
(``${__from}``/``${__to}`` as epoch milliseconds, ``${name:format}``), then the Infinity plugin's own
macros (``$__customInterval``); it is POSTed as the plugin posts it, with a reader key of a private
tenant; and its rows are read as the plugin's backend parser reads them. What is known of Grafana
and the plugin comes from their sources (grafana/scenes ``formatRegistry.ts``, grafana-data
``field/fieldOverrides.ts``; grafana-infinity-datasource ``src/interpolate.ts``,
``pkg/models/macros.go``, ``pkg/infinity/client.go`` ``GetQueryBody``, ``pkg/infinity/postprocess.go``,
infinity-libs ``jsonframer``); no Grafana runs here.
"""

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import yaml

from tests.api_calls import append_messages, create_agent, create_session, data_of
from tests.secured import Secured, secured_server

REPO = Path(__file__).resolve().parent.parent
DASHBOARD_FILE = REPO / "grafana" / "dashboards" / "strands-conversations.json"
INFINITY = "yesoreyeram-infinity-datasource"
DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
PANELS: list[dict[str, Any]] = DASHBOARD["panels"]
TENANT = "acme"
HOUR = timedelta(hours=1)

# Grafana's variable syntax: $name, [[name:format]], ${name.path:format} (grafana/scenes constants.ts).
VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")
GRAFANA_GLOBALS = {"__from", "__to", "__value", "__field", "__data", "__interval", "__interval_ms"}
INFINITY_MACROS = {"__customInterval"}


def panel_target(panel: dict[str, Any]) -> dict[str, Any]:
    targets = panel.get("targets") or []
    assert len(targets) == 1, f"{panel['title']}: expected one query, found {len(targets)}"
    target: dict[str, Any] = targets[0]
    assert target.get("type") == "graphql", f"{panel['title']}: query type {target.get('type')!r}"
    assert target.get("source") == "url" and target.get("parser") == "backend", panel["title"]
    return target


# --- Grafana's part: template variables --------------------------------------------------------


def _format(value: Any, fmt: str | None) -> str:
    """One value in one of Grafana's formats (grafana/scenes formatRegistry.ts), those used here."""
    text = str(value)
    if fmt in (None, "glob", "raw"):
        return text
    if fmt == "doublequote":
        return '"' + text.replace('"', '\\"') + '"'
    if fmt == "percentencode":
        return quote(text, safe="-_.~")  # encodeURIComponentStrict
    if fmt == "uriencode":
        return quote(text, safe=";,/?:@&=+$#-_.~")  # encodeURIStrict
    raise AssertionError(f"format {fmt!r} is not one this test knows Grafana's rules for")


def interpolate(text: str, values: dict[str, Any], default_format: str | None) -> str:
    """``text`` as Grafana's template service leaves it: known variables replaced, others kept."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        path, fmt = match.group(5), match.group(3) or match.group(6) or default_format
        key = f"{name}.{path}" if path else name
        if key not in values:
            return match.group(0)
        return _format(values[key], fmt)

    return VARIABLE.sub(replace, text)


# --- The Infinity plugin's part: its macros, its request, its parser ------------------------------


UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": HOUR,
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


def _duration(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d|w)", text)
    assert match, f"duration {text!r}"
    return UNITS[match.group(2)] * int(match.group(1))


def custom_interval(text: str, time_range: timedelta) -> str:
    """``$__customInterval(d1,v1,d2,v2,...,default)``: the first value whose duration holds the range."""

    def pick(match: re.Match[str]) -> str:
        args: list[str] = match.group(1).split(",")
        assert len(args) % 2 == 1, match.group(0)
        for duration, value in zip(args[:-1:2], args[1::2], strict=True):
            if time_range <= _duration(duration):
                return value
        return args[-1]

    return re.sub(r"\$__customInterval\b(?:\((.*?)\))?", pick, text)


def select(value: Any, path: str) -> tuple[bool, Any]:
    """GJSON's reading of ``path`` in ``value`` (whether it exists, and what it is), for the subset
    the dashboard uses: dot-separated keys, and ``#`` for every element of an array (the elements
    lacking the rest of the path left out). JSONata reads the same dot paths the same way."""
    head, _, rest = path.partition(".")
    if head == "#":
        if not isinstance(value, list):
            return False, None
        if not rest:
            return True, len(value)
        found = [select(item, rest) for item in value]
        return True, [item for exists, item in found if exists]
    if not isinstance(value, dict) or head not in value:
        return False, None
    return (True, value[head]) if not rest else select(value[head], rest)


@dataclass
class Grafana:
    """A dashboard's variables and time range, and the server its data source reaches."""

    secured: Secured
    key: str
    start: datetime
    end: datetime
    values: dict[str, str]

    def with_values(self, **values: str) -> "Grafana":
        return Grafana(self.secured, self.key, self.start, self.end, {**self.values, **values})

    def with_range(self, start: datetime, end: datetime) -> "Grafana":
        return Grafana(self.secured, self.key, start, end, self.values)

    @property
    def variables(self) -> dict[str, Any]:
        return {
            **self.values,
            "__from": int(self.start.timestamp() * 1000),
            "__to": int(self.end.timestamp() * 1000),
        }

    def request(self, target: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The URL and body Infinity sends: the frontend interpolates (format glob), the backend
        applies its macros to the URL and the GraphQL query only (not to the variables)."""
        options = target["url_options"]
        assert options["method"] == "POST" and options["body_type"] == "graphql", target
        url, query, variables = (
            interpolate(target["url"], self.variables, "glob"),
            interpolate(options["body_graphql_query"], self.variables, "glob"),
            interpolate(options.get("body_graphql_variables", ""), self.variables, "glob"),
        )
        url, query = (
            custom_interval(url, self.end - self.start),
            custom_interval(query, self.end - self.start),
        )
        return url, {"query": query, "variables": json.loads(variables) if variables else None}

    def rows(self, panel: dict[str, Any]) -> list[dict[str, Any]]:
        """The panel's rows, each column under its title, after checking the answer has no errors
        and every row has every column the panel reads."""
        target = panel_target(panel)
        url, body = self.request(target)
        assert url == self.secured.server.url, url
        response = self.secured.http.post(
            "/graphql",
            content=json.dumps(body),
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json;q=0.9,text/plain",
                "Authorization": f"Bearer {self.key}",
            },
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        assert "errors" not in answer, (panel["title"], answer["errors"])
        root_selector = interpolate(target["root_selector"], self.variables, "glob")
        exists, found = select(answer, root_selector)
        assert exists, f"{panel['title']}: no {root_selector} in {answer}"
        rows = found if isinstance(found, list) else [found]
        return [self._columns(panel["title"], target["columns"], row) for row in rows]

    @staticmethod
    def _columns(title: str, columns: list[dict[str, str]], row: dict[str, Any]) -> dict[str, Any]:
        picked: dict[str, Any] = {}
        for column in columns:
            exists, value = select(row, column["selector"])
            assert exists, f"{title}: column {column['selector']} missing from {row}"
            if column["type"] == "timestamp" and value is not None:
                value = datetime.fromisoformat(value)  # as Go's time.RFC3339 reads it: with an offset
                assert value.tzinfo is not None, (title, column)
            elif column["type"] == "number":
                assert value is None or isinstance(value, int | float), (title, column, value)
            picked[column["text"] or column["selector"]] = value
        return picked


def panel(title: str) -> dict[str, Any]:
    (found,) = (each for each in PANELS if each["title"] == title)
    return found


# --- What the dashboard is shown -------------------------------------------------------------------


def said(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "content": [{"text": text}]}


def model_call(blocks: list[dict[str, Any]], tokens: tuple[int, int], latency_ms: int) -> dict[str, Any]:
    """An assistant message with what Strands records of the model call that wrote it."""
    usage = {"inputTokens": tokens[0], "outputTokens": tokens[1], "totalTokens": sum(tokens)}
    metadata = {"usage": usage, "metrics": {"latencyMs": latency_ms}}
    return {"role": "assistant", "content": blocks, "metadata": metadata}


def tool_use(tool_use_id: str, name: str) -> dict[str, Any]:
    return {"toolUse": {"toolUseId": tool_use_id, "name": name, "input": {}}}


def tool_result(tool_use_id: str, status: str, text: str) -> dict[str, Any]:
    result = {"toolUseId": tool_use_id, "status": status, "content": [{"text": text}]}
    return {"role": "user", "content": [{"toolResult": result}]}


def minute_apart(start: datetime, *bodies: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"messageId": i, "message": body, "createdAt": (start + timedelta(minutes=i)).isoformat()}
        for i, body in enumerate(bodies)
    ]


@dataclass
class Seeded:
    grafana: Grafana
    first_hour: datetime
    """The hour of the refund conversation; the double charge came two hours later."""


def seed(call: Callable[..., dict[str, Any]], first_hour: datetime) -> None:
    """A refund on the web (one agent, a tool that works) and a double charge by email (two agents,
    a tool that fails)."""
    create_session(call, "s-refund", title="Refund for order 1234", labels={"channel": "web", "user": "ana"})
    create_agent(call, "s-refund", "support")
    refund = minute_apart(
        first_hour + timedelta(minutes=10),
        said("user", "I want a refund for my late delivery"),
        model_call([{"text": "Let me look up the order."}, tool_use("t1", "lookup_order")], (100, 20), 400),
        tool_result("t1", "success", "order 1234 shipped late"),
        model_call([{"text": "Your refund is on its way."}], (150, 30), 800),
    )
    append_messages(call, "s-refund", "support", refund)

    create_session(call, "s-billing", title="Charged twice", labels={"channel": "email", "user": "bo"})
    create_agent(call, "s-billing", "support")
    create_agent(call, "s-billing", "billing")
    start = first_hour + 2 * HOUR + timedelta(minutes=5)
    support = minute_apart(
        start,
        said("user", "Why was I charged twice?"),
        model_call([tool_use("t2", "charge_lookup")], (50, 10), 200),
        tool_result("t2", "error", "payment service unavailable"),
    )
    append_messages(call, "s-billing", "support", support)
    billing = minute_apart(
        start + timedelta(minutes=3),
        said("user", "Please refund the double charge"),
        model_call([{"text": "Refund issued for the double charge."}], (70, 10), 600),
    )
    append_messages(call, "s-billing", "billing", billing)


@pytest.fixture(scope="module")
def seeded(database_url: str) -> Iterator[Seeded]:
    with secured_server(database_url) as secured:
        writer = secured.key("writer", tenant=TENANT, label="agents")
        reader = secured.key("reader", tenant=TENANT, label="grafana")
        now = datetime.now(UTC)
        first_hour = now.replace(minute=0, second=0, microsecond=0) - 4 * HOUR
        seed(lambda query, variables=None: secured.graphql(query, variables, key=writer), first_hour)
        # Grafana's "Last 6 hours", as the dashboard is opened after the conversations were written.
        end = datetime.now(UTC)
        defaults = {each["name"]: each["current"]["value"] for each in DASHBOARD["templating"]["list"]}
        values = {
            **defaults,
            "server": secured.server.url,
            "graphiql": secured.server.url,
            "viewer": secured.server.base_url + "/",
        }
        yield Seeded(Grafana(secured, reader, end - 6 * HOUR, end, values), first_hour)


# --- The JSON itself -------------------------------------------------------------------------------


def test_the_dashboard_is_ready_to_import() -> None:
    assert DASHBOARD["uid"] == "strands-conversations" and DASHBOARD["title"]
    assert DASHBOARD["schemaVersion"] >= 39  # Grafana 11 and later
    requires = {(each["type"], each["id"]) for each in DASHBOARD["__requires"]}
    assert {("grafana", "grafana"), ("datasource", INFINITY)} <= requires
    assert {("panel", each["type"]) for each in PANELS} <= requires
    uses_inputs = "${DS_" in DASHBOARD_FILE.read_text(encoding="utf-8")
    assert uses_inputs == bool(DASHBOARD.get("__inputs")), "${DS_...} needs __inputs, and only then"
    (datasource,) = (each for each in DASHBOARD["templating"]["list"] if each["type"] == "datasource")
    assert datasource["query"] == INFINITY
    ids = [each["id"] for each in PANELS]
    assert len(set(ids)) == len(ids)
    for each in PANELS:
        grid = each["gridPos"]
        assert {"x", "y", "w", "h"} <= grid.keys() and grid["x"] + grid["w"] <= 24, each["title"]
        assert each["type"] in {"timeseries", "table", "stat"} and each["description"], each["title"]
        expected = {"type": INFINITY, "uid": "${" + datasource["name"] + "}"}
        assert each["datasource"] == expected == panel_target(each)["datasource"], each["title"]


def test_the_statistics_of_the_default_range_are_served_from_the_rollups(seeded: Seeded) -> None:
    """Grafana opens the dashboard on the last 7 days: every chart and the tool ranking then ask what
    the rollups keep, so no statement aggregates the messages of the week (the partial quarter
    hours at its ends and buckets not folded yet are read from rows, by statements that read the
    rollups too)."""
    assert DASHBOARD["time"] == {"from": "now-7d", "to": "now"}
    week = replace(seeded.grafana, start=seeded.grafana.end - timedelta(days=7))
    charts = [
        each
        for each in PANELS
        if re.search(
            r"\b(conversationStats|toolStats)\(", panel_target(each)["url_options"]["body_graphql_query"]
        )
    ]
    assert len(charts) == 5
    for each in charts:
        with seeded.grafana.secured.server.count_statements() as sent:
            week.rows(each)
        from_rows = [
            statement for statement in sent if "session_messages" in statement and "rollups" not in statement
        ]
        assert sent and not from_rows, (each["title"], from_rows)


def test_every_variable_the_dashboard_uses_is_defined() -> None:
    defined = {each["name"] for each in DASHBOARD["templating"]["list"]}
    for match in VARIABLE.finditer(DASHBOARD_FILE.read_text(encoding="utf-8")):
        name = match.group(1) or match.group(2) or match.group(4)
        assert name in defined | GRAFANA_GLOBALS | INFINITY_MACROS, match.group(0)


def test_the_dashboard_shows_a_panel_for_each_question() -> None:
    asked = {
        "conversationStats": {"timeseries", "stat"},
        "toolStats": {"table"},
        "sessions(": {"table"},
        "searchMessages": {"table"},
    }
    for field, kinds in asked.items():
        shown = {
            each["type"]
            for each in PANELS
            if field in panel_target(each)["url_options"]["body_graphql_query"]
        }
        assert shown == kinds, field


# --- Every panel against a real server -------------------------------------------------------------


@pytest.mark.parametrize("title", [each["title"] for each in PANELS])
def test_every_panel_answers_without_errors_with_the_columns_it_reads(seeded: Seeded, title: str) -> None:
    rows = seeded.grafana.with_values(search="refund").rows(panel(title))
    assert rows, title
    target = panel_target(panel(title))
    if target["format"] == "timeseries":
        # The plugin makes one series per agent (the SDK's LongToWide) only from rows sorted by
        # time whose string columns hold no null; else Grafana gets the long table as it is.
        times = [row["time"] for row in rows]
        assert times == sorted(times) and all(time is not None for time in times)
        factors = [column["text"] for column in target["columns"] if column["type"] == "string"]
        assert all(row[factor] is not None for row in rows for factor in factors)


def hourly(
    rows: list[dict[str, Any]], first_hour: datetime, *columns: str
) -> dict[tuple[int, str | None], tuple[Any, ...]]:
    """The rows' non-zero values by (hours after the first conversation's hour, agent)."""
    found = {}
    for row in rows:
        values = tuple(row[column] for column in columns)
        if any(values):
            found[((row["time"] - first_hour) // HOUR, row.get("agent"))] = values
    return found


def test_messages_and_tokens_by_agent_are_counted_per_hour(seeded: Seeded) -> None:
    messages = seeded.grafana.rows(panel("Messages by agent"))
    assert {row["agent"] for row in messages} == {"billing", "support"}
    first_bucket = seeded.grafana.start.replace(minute=0, second=0, microsecond=0)
    assert [row["time"] for row in messages[::2]] == [first_bucket + i * HOUR for i in range(7)]
    assert hourly(messages, seeded.first_hour, "messages") == {
        (0, "support"): (4,),
        (2, "support"): (3,),
        (2, "billing"): (2,),
    }
    tokens = seeded.grafana.rows(panel("Tokens by agent"))
    assert hourly(tokens, seeded.first_hour, "input", "output", "total") == {
        (0, "support"): (250, 50, 300),
        (2, "support"): (50, 10, 60),
        (2, "billing"): (70, 10, 80),
    }


def test_latency_is_the_p95_and_average_of_the_model_calls(seeded: Seeded) -> None:
    """The p95 from the rollups' latency histogram is within 2% of percentile_cont; the average is exact."""
    rows = seeded.grafana.rows(panel("Latency of model calls"))
    assert hourly(rows, seeded.first_hour, "p95", "avg") == {
        (0, None): (pytest.approx(780.0, rel=0.02), 600.0),
        (2, None): (pytest.approx(580.0, rel=0.02), 400.0),
    }


def test_the_totals_are_those_of_the_whole_range(seeded: Seeded) -> None:
    (totals,) = seeded.grafana.rows(panel("In the time range"))
    assert totals == {
        "Messages": 9,
        "Sessions": 2,
        "Tokens": 440,
        "Tool calls": 2,
        "Tool errors": 1,
        "Latency p95": pytest.approx(770.0, rel=0.02),
    }


def test_tools_are_ranked_by_errors_with_their_error_rate(seeded: Seeded) -> None:
    assert seeded.grafana.rows(panel("Tools by errors")) == [
        {"Tool": "charge_lookup", "Calls": 1, "Errors": 1, "Error rate": 1.0},
        {"Tool": "lookup_order", "Calls": 1, "Errors": 0, "Error rate": 0.0},
    ]


def test_the_bucket_follows_the_time_range(seeded: Seeded) -> None:
    grafana = seeded.grafana
    two_hours = grafana.with_range(seeded.first_hour, seeded.first_hour + 2 * HOUR)
    rows = two_hours.rows(panel("Messages by agent"))
    assert len(rows) == 120  # a minute each, for the one agent that wrote then
    assert sum(row["messages"] for row in rows) == 4
    month = grafana.with_range(grafana.end - timedelta(days=30), grafana.end)
    assert len(month.rows(panel("Messages by agent"))) == 31 * 2  # a day each (30 and a part), two agents


def test_recent_sessions_list_their_agents_last_messages_and_totals(seeded: Seeded) -> None:
    rows = seeded.grafana.rows(panel("Recent sessions"))
    for row in rows:
        assert seeded.grafana.start <= row.pop("Last activity") <= seeded.grafana.end
    assert rows == [
        {
            "Session": "s-billing",
            "Title": "Charged twice",
            "Agents": ["support", "billing"],
            "Messages": 5,
            "Tokens": 140,
            "Tool errors": 1,
            "Labels": {"channel": "email", "user": "bo"},
            "Snapshots": False,
            "Last message": ["payment service unavailable", "Refund issued for the double charge."],
        },
        {
            "Session": "s-refund",
            "Title": "Refund for order 1234",
            "Agents": ["support"],
            "Messages": 4,
            "Tokens": 300,
            "Tool errors": 0,
            "Labels": {"channel": "web", "user": "ana"},
            "Snapshots": False,
            "Last message": ["Your refund is on its way."],
        },
    ]


def session_link(each: dict[str, Any], opens: str = "GraphiQL") -> str:
    """The URL of the Session column's link whose title ends with ``opens``."""
    (override,) = (o for o in each["fieldConfig"]["overrides"] if o["matcher"]["options"] == "Session")
    (links,) = (p["value"] for p in override["properties"] if p["id"] == "links")
    (link,) = (link for link in links if link["title"].endswith(f"in {opens}"))
    url: str = link["url"]
    return url


def viewer_link(seeded: Seeded, title: str, row: dict[str, Any]) -> str:
    """The viewer link of ``row`` as Grafana fills it in: ${__value.raw} is the cell's value,
    ${__data.fields.X} the row's column X."""
    grafana = seeded.grafana
    values = {**grafana.variables, "__value.raw": row["Session"]}
    values.update({f"__data.fields.{name}": value for name, value in row.items()})
    return interpolate(session_link(panel(title), "the viewer"), values, "uriencode")


def test_a_recent_session_links_to_its_conversation_in_the_viewer(seeded: Seeded) -> None:
    grafana = seeded.grafana
    (billing,) = (row for row in grafana.rows(panel("Recent sessions")) if row["Session"] == "s-billing")

    url = viewer_link(seeded, "Recent sessions", billing)
    parts = urlsplit(url)
    page = grafana.secured.http.get(f"{parts.path}?{parts.query}", headers={"Accept": "text/html"})

    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == grafana.secured.server.base_url + "/"
    assert parse_qs(parts.query, strict_parsing=True) == {"session": ["s-billing"]}
    assert page.status_code == 200 and "viewer/static/app.js" in page.text


def test_a_search_hit_links_to_its_message_in_the_viewer(seeded: Seeded) -> None:
    rows = seeded.grafana.with_values(search="refund").rows(panel("Search: ${search}"))

    urls = [urlsplit(viewer_link(seeded, "Search: ${search}", row)) for row in rows]

    assert [(parse_qs(url.query)["session"], url.fragment) for url in urls] == [
        (["s-billing"], "msg:billing:1"),
        (["s-billing"], "msg:billing:0"),
        (["s-refund"], "msg:support:3"),
        (["s-refund"], "msg:support:0"),
    ]


def test_a_session_id_that_is_not_a_plain_word_reaches_the_viewer_whole(seeded: Seeded) -> None:
    url = viewer_link(seeded, "Recent sessions", {"Session": "a&b #1/é"})

    assert parse_qs(urlsplit(url).query) == {"session": ["a&b #1/é"]}


@pytest.mark.parametrize("title", ["Recent sessions", "Search: ${search}"])
def test_a_session_links_to_its_conversation_in_graphiql(seeded: Seeded, title: str) -> None:
    grafana = seeded.grafana
    # Grafana encodes what it puts in a data link as encodeURI does unless told otherwise (":raw"):
    # grafana-data's getLinksSupplier, field/fieldOverrides.ts.
    values = {**grafana.variables, "__value.raw": "s-billing"}
    url = interpolate(session_link(panel(title)), values, "uriencode")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == grafana.secured.server.url
    page = grafana.secured.http.get(parts.path + "?" + parts.query, headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text
    # What the GraphiQL page (graphql_api/graphiql/static/page.js) opens: ?q= and &variables=.
    opened = {name: values[0] for name, values in parse_qs(parts.query, strict_parsing=True).items()}
    assert json.loads(opened["variables"]) == {"sessionId": "s-billing"}
    session = data_of(grafana.secured.graphql(opened["q"], json.loads(opened["variables"]), key=grafana.key))
    conversation = session["session"]
    assert [agent["agentId"] for agent in conversation["agents"]] == ["support", "billing"]
    texts = [
        node["text"] for agent in conversation["agents"] for node in agent["messagesConnection"]["nodes"]
    ]
    assert "Why was I charged twice?" in texts and "Refund issued for the double charge." in texts


# --- The search box -------------------------------------------------------------------------------


def test_search_finds_the_messages_that_mention_the_words_newest_first(seeded: Seeded) -> None:
    rows = seeded.grafana.with_values(search="refund").rows(panel("Search: ${search}"))
    # a log: the double charge came after the refund conversation (best first would differ)
    assert [(row["Session"], row["Agent"], row["Message"]) for row in rows] == [
        ("s-billing", "billing", 1),
        ("s-billing", "billing", 0),
        ("s-refund", "support", 3),
        ("s-refund", "support", 0),
    ]
    assert [row["Created"] for row in rows] == sorted((row["Created"] for row in rows), reverse=True)
    assert all("**" in row["Snippet"] and row["Rank"] > 0 for row in rows)
    assert all(seeded.grafana.start <= row["Created"] < seeded.grafana.end for row in rows)


def test_a_search_with_quotes_reaches_the_server_as_typed(seeded: Seeded) -> None:
    rows = seeded.grafana.with_values(search='"double charge" refund').rows(panel("Search: ${search}"))
    assert sorted((row["Agent"], row["Message"]) for row in rows) == [("billing", 0), ("billing", 1)]


def test_an_empty_search_box_shows_no_rows_rather_than_an_error(seeded: Seeded) -> None:
    assert seeded.grafana.values["search"] == ""  # the dashboard's default
    assert seeded.grafana.rows(panel("Search: ${search}")) == []


# --- The labels box -------------------------------------------------------------------------------


def test_the_labels_box_narrows_every_panel(seeded: Seeded) -> None:
    web = seeded.grafana.with_values(labels='{channel: "web"}', search="refund")
    assert web.rows(panel("In the time range"))[0]["Sessions"] == 1
    assert [row["Session"] for row in web.rows(panel("Recent sessions"))] == ["s-refund"]
    assert [row["Tool"] for row in web.rows(panel("Tools by errors"))] == ["lookup_order"]
    assert {row["Session"] for row in web.rows(panel("Search: ${search}"))} == {"s-refund"}
    assert {row["agent"] for row in web.rows(panel("Messages by agent"))} == {"support"}


# --- The compose profile that starts Grafana with it -----------------------------------------------


PROVISIONING = REPO / "grafana" / "provisioning"


def provisioned(kind: str) -> Any:
    return yaml.safe_load((PROVISIONING / kind / "strands-sessions.yaml").read_text(encoding="utf-8"))


def test_the_compose_profile_provisions_grafana_with_this_dashboard_and_its_data_source() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    grafana = compose["services"]["grafana"]
    assert grafana["profiles"] == ["grafana"]
    plugin, version = grafana["environment"]["GF_INSTALL_PLUGINS"].split(" ")
    assert plugin == INFINITY and re.fullmatch(r"\d+\.\d+\.\d+", version)
    (provider,) = provisioned("dashboards")["providers"]
    assert {"./grafana/provisioning:/etc/grafana/provisioning:ro", "./grafana/dashboards:"
            + provider["options"]["path"] + ":ro"} <= set(grafana["volumes"])  # fmt: skip
    assert DASHBOARD_FILE.parent == REPO / "grafana" / "dashboards"

    (source,) = provisioned("datasources")["datasources"]
    variables = {each["name"]: each for each in DASHBOARD["templating"]["list"]}
    assert (source["type"], source["uid"]) == (INFINITY, variables["datasource"]["current"]["value"])
    assert source["jsonData"]["auth_method"] == "bearerToken"
    assert source["secureJsonData"]["bearerToken"] == "$SESSION_GRAPHQL_GRAFANA_KEY"
    assert source["jsonData"]["allowedHosts"] == ["$SESSION_GRAPHQL_URL"]
    url = grafana["environment"]["SESSION_GRAPHQL_URL"]
    assert variables["server"]["current"]["value"] == url + "/graphql"

    # Compose reads env files only for the services it starts, so the key stops this profile alone.
    assert grafana["env_file"] == "grafana/grafana.env"
    env = (REPO / "grafana" / "grafana.env").read_text(encoding="utf-8")
    assert "\nSESSION_GRAPHQL_GRAFANA_KEY=${SESSION_GRAPHQL_GRAFANA_KEY:?" in env
    assert "GRAFANA_KEY" not in json.dumps(compose["services"]["api"])


def test_the_data_source_health_check_needs_the_key(seeded: Seeded) -> None:
    (source,) = provisioned("datasources")["datasources"]
    check = source["jsonData"]["customHealthCheckUrl"].replace("$SESSION_GRAPHQL_URL", "")
    http, key = seeded.grafana.secured.http, seeded.grafana.key
    assert http.get(check, headers={"Authorization": f"Bearer {key}"}).json() == {
        "data": {"__typename": "Query"}
    }
    assert http.get(check).status_code == 401


# --- An agent on SnapshotSessionManager + GraphQLStorage shows like any other --------------------


def test_a_snapshot_backed_agent_appears_in_the_panels_like_any_other(database_url: str) -> None:
    from strands import Agent
    from strands.session.snapshot_session_manager import SnapshotSessionManager

    from client import GraphQLStorage
    from tests.fake_model import FakeModel

    with secured_server(database_url) as secured:
        writer = secured.key("writer", tenant="snapshots", label="agents")
        reader = secured.key("reader", tenant="snapshots", label="grafana")
        storage = GraphQLStorage(secured.server.url, token=writer)
        manager = SnapshotSessionManager(session_id="s-snap", storage=storage)
        agent = Agent(agent_id="support", model=FakeModel(), session_manager=manager, callback_handler=None)
        agent("my parcel never arrived")
        agent("where is it?")
        storage.close()
        end = datetime.now(UTC) + timedelta(minutes=1)
        defaults = {each["name"]: each["current"]["value"] for each in DASHBOARD["templating"]["list"]}
        values = {**defaults, "server": secured.server.url, "graphiql": secured.server.url}
        grafana = Grafana(secured, reader, end - 6 * HOUR, end, values)

        (session,) = grafana.rows(panel("Recent sessions"))
        (totals,) = grafana.rows(panel("In the time range"))
        found = grafana.with_values(search="parcel").rows(panel("Search: ${search}"))
        by_agent = grafana.rows(panel("Messages by agent"))

    assert (session["Session"], session["Agents"], session["Messages"]) == ("s-snap", ["support"], 4)
    assert session["Snapshots"] is True
    assert totals["Sessions"] == 1
    assert [(row["Session"], row["Agent"], row["Message"]) for row in found][-1] == ("s-snap", "support", 0)
    assert {row["agent"] for row in by_agent} == {"support"}
    assert sum(row["messages"] for row in by_agent) == 4
