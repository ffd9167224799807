"""The conversation viewer at /: served from the package with a strict policy, and in a real Chromium
that may reach nothing but this machine it lists sessions, opens one as each agent's transcript, and
shows a message written through the API without a reload. The conversations are real Strands agents'."""

import base64
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatch
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx
import pytest
from graphql import build_schema, parse, validate
from playwright.sync_api import (
    BrowserContext,
    Page,
    Request,
    Route,
    WebSocketRoute,
    expect,
    sync_playwright,
)
from strands import Agent, tool
from strands.session import RepositorySessionManager
from strands.session.snapshot_session_manager import SnapshotSessionManager

from client import GraphQLSessionRepository, GraphQLStorage
from db.migrate import upgrade
from graphql_api.settings import Settings
from tests.client_agent_script import new_swarm, remember
from tests.conftest import RunningServer
from tests.fake_model import FakeModel
from tests.scratch_database import scratch_database
from tests.secured import Secured, secured_server
from tests.server_process import ServerProcess

REPO = Path(__file__).resolve().parent.parent
VIEWER = REPO / "graphql_api" / "viewer"
SCREENSHOTS = REPO / "docs"
CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK = ("127.0.0.1", "localhost")
PAGE_SIZE = 25
"""Sessions on a page of the list (sessions.js)."""
HTML = {"Accept": "text/html"}
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.4 an invoice " * 100
HOSTILE = '<img src=x onerror="window.pwned=1"> <script>window.pwned=2</script>'
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"
)


@tool
def lookup_order(order_id: str) -> str:
    """Look up an order.

    Args:
        order_id: The order's id.
    """
    if order_id == "missing":
        raise ValueError("no such order")
    return f"order {order_id}: shipped"


def support_agent(url: str, session_id: str) -> Agent:
    repository = GraphQLSessionRepository(url)
    return Agent(
        agent_id="support",
        model=FakeModel(),
        tools=[remember, lookup_order],
        session_manager=RepositorySessionManager(session_id=session_id, session_repository=repository),
        callback_handler=None,
    )


@dataclass
class Seeded:
    server: RunningServer

    @property
    def url(self) -> str:
        return self.server.base_url

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = httpx.post(
            self.server.url, json={"query": query, "variables": variables}
        ).json()
        assert "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]


def seed(url: str) -> None:
    """Three conversations as Strands writes them: tool calls (one failing), a redaction, an image
    and hostile text; a Swarm; and a snapshot-backed agent with checkpoints."""
    support = support_agent(url, "s-order")
    support("Hi, I'm Ana. Where is my order?")
    support('use lookup_order {"order_id": "A-17"}')
    support('use lookup_order {"order_id": "missing"}')
    support("tell me something forbidden")
    support(
        [
            {"text": "Here is the receipt"},
            {"image": {"format": "png", "source": {"bytes": PNG}}},
            {"document": {"format": "pdf", "name": "invoice", "source": {"bytes": PDF}}},
        ]
    )
    support(HOSTILE)
    # A model that reasons (the fake one does not): as a provider's message would be stored.
    reasoned = {
        "role": "assistant",
        "content": [
            {
                "reasoningContent": {
                    "reasoningText": {"text": "The order shipped yesterday.", "signature": "s"}
                }
            },
            {"text": "It is on its way."},
        ],
    }
    httpx.post(
        url,
        json={
            "query": 'mutation($m: JSON!) { createMessage(sessionId: "s-order", agentId: "support", '
            "message: {messageId: 16, message: $m}) { messageId } }",
            "variables": {"m": reasoned},
        },
    ).raise_for_status()
    httpx.post(
        url,
        json={
            "query": 'mutation { updateSession(sessionId: "s-order", title: "Where is my order?", '
            'labels: {user: "ana", channel: "web"}) { sessionId } }'
        },
    ).raise_for_status()
    new_swarm(url, "s-swarm")("write a report")
    storage = GraphQLStorage(url)
    manager = SnapshotSessionManager(session_id="s-snap", storage=storage, snapshot_trigger=lambda **_: True)
    snapshotted = Agent(agent_id="planner", model=FakeModel(), session_manager=manager, callback_handler=None)
    snapshotted("first plan")
    snapshotted("second plan")


@pytest.fixture(scope="module")
def seeded(database_url: str) -> Iterator[Seeded]:
    with scratch_database(database_url) as url:
        upgrade(url)
        server = RunningServer(Settings(database_url=url))
        server.start()
        try:
            seed(server.url)
            yield Seeded(server)
        finally:
            server.stop()


class Loads(HTMLParser):
    """The URLs a page makes the browser fetch: scripts, stylesheets, icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        url = attributes.get("src") if tag == "script" else attributes.get("href") if tag == "link" else None
        if url is not None:
            self.urls.append(url)


def loads_of(html: str) -> list[str]:
    parser = Loads()
    parser.feed(html)
    return parser.urls


def static_files() -> list[Path]:
    return sorted(path for path in (VIEWER / "static").rglob("*") if path.is_file())


# --- Served from the package ----------------------------------------------------------------------


def test_the_viewer_is_at_the_root_and_graphiql_stays_at_graphql(seeded: Seeded) -> None:
    page = httpx.get(seeded.url + "/", headers=HTML)
    graphiql = httpx.get(seeded.server.url, headers=HTML)

    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="viewer/static/app.js">' in page.text
    assert '<a href="graphql">GraphiQL</a>' in page.text
    assert graphiql.status_code == 200 and "graphiql" in graphiql.text


def test_the_page_allows_scripts_styles_and_connections_only_from_this_server(seeded: Seeded) -> None:
    headers = httpx.get(seeded.url + "/", headers=HTML).headers
    directives = {
        name: sources
        for name, *sources in (part.split() for part in headers["content-security-policy"].split(";"))
    }

    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == directives["style-src"] == directives["connect-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert "unsafe" not in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"


def test_the_page_loads_nothing_from_another_host_and_never_parses_content_as_html(seeded: Seeded) -> None:
    page = httpx.get(seeded.url + "/", headers=HTML).text
    scripts = {path.name: path.read_text(encoding="utf-8") for path in static_files() if path.suffix == ".js"}

    assert loads_of(page)
    for url in loads_of(page):
        assert not urlsplit(url).scheme and not urlsplit(url).netloc, url
    for name, text in {"page.html": page, **scripts}.items():
        for sign in ("://", "unpkg", "jsdelivr", "cdn"):
            assert sign not in text.lower(), (name, sign)
    for name, text in scripts.items():
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function("):
            assert sink not in text, (name, sink)


def test_every_asset_is_served_without_credentials_on_a_secured_server(database_url: str) -> None:
    with secured_server(database_url) as secured:
        page = secured.http.get("/", headers=HTML)
        assets = {url: secured.http.get(urljoin(str(page.url), url)) for url in loads_of(page.text)}
        modules = {path.name: secured.http.get(f"/viewer/static/{path.name}") for path in static_files()}
        refused = secured.post("{ sessions { totalCount } }")

    assert page.status_code == 200
    assert refused.status_code == 401  # the data still needs the key
    for url, asset in {**assets, **modules}.items():
        assert asset.status_code == 200, url
        assert asset.headers["content-type"] == CONTENT_TYPES[Path(url).suffix], url
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert asset.headers["cache-control"] == "no-cache"


def test_every_module_a_module_imports_is_one_of_the_package(seeded: Seeded) -> None:
    names = {path.name for path in static_files()}
    for path in static_files():
        if path.suffix == ".js":
            for imported in re.findall(r'^import .* from "\./([^"]+)";$', path.read_text(), re.MULTILINE):
                assert imported in names, (path.name, imported)
                assert httpx.get(f"{seeded.url}/viewer/static/{imported}").status_code == 200


def viewer_documents() -> dict[str, str]:
    """The GraphQL documents of the viewer's modules: their template literals, constants filled in."""
    constants: dict[str, str] = {}
    for path in static_files():
        if path.suffix == ".js":
            text = path.read_text(encoding="utf-8")
            constants.update(
                re.findall(r"^(?:export )?const (\w+) = `(.*?)`;$", text, re.MULTILINE | re.DOTALL)
            )
            constants.update(re.findall(r"^const (\w+) = (\d+);$", text, re.MULTILINE))
    fill = re.compile(r"\$\{(\w+)\}")
    documents = {}
    for value in constants.values():
        if re.match(r"(query|subscription|mutation) Viewer", value):
            document = fill.sub(lambda m: fill.sub(lambda n: constants[n[1]], constants[m[1]]), value)
            documents[document.split("(")[0].split()[1]] = document
    return documents


def test_every_operation_the_viewer_sends_fits_schema_graphql() -> None:
    schema = build_schema((REPO / "schema.graphql").read_text(encoding="utf-8"))
    documents = viewer_documents()

    assert {"ViewerSessions", "ViewerSearch", "ViewerSession", "ViewerMessageAdded"} <= set(documents)
    for name, document in documents.items():
        assert validate(schema, parse(document)) == [], name


def test_the_wheel_carries_every_file_the_viewer_serves() -> None:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    patterns = re.findall(r'"(viewer/[^"]+)"', text)
    for path in [VIEWER / "page.html", *static_files()]:
        relative = str(path.relative_to(VIEWER.parent))
        assert any(fnmatch(relative, pattern) for pattern in patterns), relative


def test_without_graphiql_the_page_does_not_link_to_it(database_url: str) -> None:
    server = RunningServer(Settings(database_url=database_url, graphiql=False))
    server.start()
    try:
        page = httpx.get(server.base_url + "/", headers=HTML)
    finally:
        server.stop()

    assert page.status_code == 200 and "viewer/static/app.js" in page.text
    assert 'href="graphql"' not in page.text


def test_switched_off_the_root_goes_to_graphiql_and_the_modules_are_not_served(database_url: str) -> None:
    server = RunningServer(Settings(database_url=database_url, viewer=False))
    server.start()
    try:
        home = httpx.get(server.base_url + "/", headers=HTML)
        module = httpx.get(server.base_url + "/viewer/static/app.js")
    finally:
        server.stop()

    assert home.status_code == 307 and home.headers["location"] == "/graphql"
    assert module.status_code == 404


# --- In Chromium, offline -------------------------------------------------------------------------


@dataclass
class Browsing:
    context: BrowserContext
    outside: list[str]
    failed: list[str]

    def request_failed(self, request: Request) -> None:
        # A request the page had in flight when a test navigated away is aborted, not failed.
        if request.failure != "net::ERR_ABORTED":
            self.failed.append(f"failed: {request.url} {request.failure}")

    def new_page(self) -> Page:
        page = self.context.new_page()
        page.on("pageerror", lambda error: self.failed.append(str(error)))
        page.on("console", lambda m: self.failed.append(m.text) if m.type == "error" else None)
        page.on("requestfailed", self.request_failed)
        return page


@contextmanager
def browser(tmp_path: Path) -> Iterator[Browsing]:
    """A Chromium that may reach nothing but this machine, watching for CSP violations."""
    assert CHROMIUM is not None
    outside: list[str] = []

    def only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "profile",
            executable_path=CHROMIUM,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        context.route("**/*", only_loopback)
        context.add_init_script(
            "window.cspViolations = [];"
            "document.addEventListener('securitypolicyviolation',"
            " e => window.cspViolations.push(e.violatedDirective));"
        )
        browsing = Browsing(context, outside, [])
        try:
            yield browsing
        finally:
            context.close()
    assert outside == []


@pytest.fixture
def browsing(tmp_path: Path) -> Iterator[Browsing]:
    with browser(tmp_path) as browsing:
        yield browsing


def screenshot(page: Page, name: str, *, in_readme: bool = True) -> None:
    """For the README with UPDATE_SCREENSHOTS=1; whole pages into VIEWER_DEBUG_SHOTS, a directory."""
    if in_readme and os.environ.get("UPDATE_SCREENSHOTS") == "1":
        page.screenshot(path=SCREENSHOTS / name)
    if os.environ.get("VIEWER_DEBUG_SHOTS"):
        page.screenshot(path=Path(os.environ["VIEWER_DEBUG_SHOTS"]) / name, full_page=True)


@needs_chromium
def test_the_list_shows_the_newest_sessions_first_with_their_facts(
    seeded: Seeded, browsing: Browsing
) -> None:
    page = browsing.new_page()
    page.goto(seeded.url + "/")

    rows = page.locator("table.sessions tbody tr")
    expect(rows).to_have_count(3)
    first = rows.nth(2).inner_text()
    screenshot(page, "viewer-sessions.png")

    assert [rows.nth(i).locator("td a").inner_text() for i in range(3)] == [
        "s-snap",
        "s-swarm",
        "Where is my order?",
    ]
    assert "s-order" in first and "user=ana" in first and "channel=web" in first and "support" in first
    order = seeded.graphql('{ session(sessionId: "s-order") { messageCount totals { totalTokens } } }')[
        "session"
    ]
    cells = rows.nth(2).locator("td").all_inner_texts()
    assert cells[3] == f"{order['messageCount']:,}" and cells[4] == f"{order['totals']['totalTokens']:,}"
    assert page.evaluate("window.cspViolations") == []
    assert browsing.failed == []


@needs_chromium
def test_filters_narrow_the_list_and_live_in_the_url(seeded: Seeded, browsing: Browsing) -> None:
    page = browsing.new_page()
    page.goto(seeded.url + "/")
    page.get_by_label("Labels").fill("user=ana")
    page.get_by_label("Labels").press("Enter")

    expect(page.locator("table.sessions tbody tr")).to_have_count(1)
    assert "labels=user%3Dana" in page.url
    page.goto(seeded.url + "/?snapshots=yes")
    expect(page.locator("table.sessions tbody tr")).to_have_count(1)
    assert "s-snap" in page.locator("table.sessions tbody").inner_text()
    long_ago = datetime.now(UTC) - timedelta(days=3)
    seeded.graphql(
        'mutation($at: DateTime!) { createSession(session: {sessionId: "s-old", createdAt: $at}) '
        "{ sessionId } }",
        {"at": long_ago.isoformat()},
    )
    page.goto(seeded.url + "/")
    page.get_by_label("Time range").select_option("24h")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"range=24h"))
    expect(page.locator("table.sessions tbody")).not_to_contain_text("s-old")
    page.get_by_label("Time range").select_option("7d")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("table.sessions tbody")).to_contain_text("s-old")
    page.goto(seeded.url + "/?labels=nonsense")
    expect(page.get_by_role("alert")).to_contain_text("name=value")
    assert browsing.failed == []


@needs_chromium
def test_search_shows_snippets_that_open_the_message(seeded: Seeded, browsing: Browsing) -> None:
    page = browsing.new_page()
    page.goto(seeded.url + "/")
    page.get_by_label("Search messages").fill("receipt")
    page.get_by_label("Search messages").press("Enter")

    hit = page.locator("ol.hits li").first
    expect(hit.locator("mark").first).to_have_text(re.compile("receipt", re.IGNORECASE))
    hit.get_by_role("link").click()

    target = page.locator(".turn.targeted")
    expect(target).to_contain_text("Here is the receipt")
    assert re.search(r"\?session=s-order#msg:support:\d+$", page.url)
    assert browsing.failed == []


@needs_chromium
def test_a_session_opens_as_its_transcript_with_tools_tokens_redactions_and_media(
    seeded: Seeded, browsing: Browsing
) -> None:
    page = browsing.new_page()
    page.goto(seeded.url + "/")
    page.get_by_role("link", name="Where is my order?").click()
    expect(page).to_have_title("Where is my order? · Conversations")
    turns = page.locator("#main .turn")
    expect(turns.first).to_contain_text("Hi, I'm Ana.")
    tools = page.locator("details.tool")
    expect(tools).to_have_count(2)
    tools.first.locator("summary").focus()
    page.keyboard.press("Enter")  # the keyboard opens a folded call
    screenshot(page, "viewer-transcript.png")

    assert tools.nth(0).locator("summary").inner_text().split() == ["lookup_order", "success"]
    assert tools.nth(1).locator("summary").inner_text().split() == ["lookup_order", "error"]
    assert "order A-17: shipped" in tools.nth(0).inner_text()
    assert tools.nth(0).get_attribute("open") is not None
    assistant = page.locator(".turn.assistant").first
    assert "15 tokens (10 in, 5 out)" in assistant.inner_text() and "1 ms" in assistant.inner_text()
    redacted = page.locator(".turn.is-redacted")
    expect(redacted).to_have_count(1)
    assert (
        "[User input redacted.]" in redacted.first.inner_text()
        and "forbidden" not in redacted.first.inner_text()
    )
    assert page.locator(".media").all_inner_texts() == [
        f"Image (png) · {len(PNG)} B",
        f"Document (invoice, pdf) · {len(PDF) / 1024:.1f} kB",
    ]
    reasoning = page.locator("details.reasoning")
    expect(reasoning.locator("summary")).to_have_text("Reasoning")
    assert not reasoning.locator(".text").is_visible()  # folded
    reasoning.locator("summary").click()
    expect(reasoning.locator(".text")).to_have_text("The order shipped yesterday.")
    assert HOSTILE in page.locator("#main").inner_text()
    assert page.evaluate("window.pwned") is None
    assert page.evaluate("window.cspViolations") == []
    assert browsing.failed == []


@needs_chromium
def test_a_swarm_shows_its_state_and_a_snapshot_agent_its_checkpoints_as_of(
    seeded: Seeded, browsing: Browsing
) -> None:
    page = browsing.new_page()
    page.goto(seeded.url + "/?session=s-swarm")
    swarm = page.locator(".multi-agent")
    expect(swarm).to_contain_text("Swarm")
    screenshot(page, "viewer-swarm.png", in_readme=False)
    assert "researcher → writer" in swarm.inner_text()
    facts = dict(
        zip(swarm.locator("dt").all_inner_texts(), swarm.locator("dd").all_inner_texts(), strict=True)
    )
    assert facts["Status"] == "completed"
    assert facts["Node results"].split() == ["researcher", "completed", "writer", "completed"]
    assert facts["Node history"] == "researcher → writer"

    page.goto(seeded.url + "/?session=s-snap")
    checkpoints = page.locator(".checkpoints")
    checkpoints.locator("summary").click()
    expect(checkpoints.locator("li")).to_have_count(2)
    checkpoints.get_by_role("link", name="view as of").first.click()

    expect(page.locator(".as-of")).to_contain_text("as of checkpoint")
    assert "first plan" in page.locator(".turns").inner_text()
    assert "second plan" not in page.locator(".turns").inner_text()
    page.go_back()
    expect(page.locator(".turns")).to_contain_text("second plan")
    assert browsing.failed == []


NEW_MESSAGE = """mutation($id: Int!, $text: String!) {
  createMessage(sessionId: "s-order", agentId: "support", message: {
    messageId: $id, message: {role: "user", content: [{text: $text}]}
  }) { messageId }
}"""


SUPPORT_TURNS = 'section[aria-label="Agent support"] .turn'


def next_message_id(seeded: Seeded, session_id: str = "s-order", agent_id: str = "support") -> int:
    found = seeded.graphql(
        "query($s: String!, $a: String!) { agent(sessionId: $s, agentId: $a) { lastMessage { messageId } } }",
        {"s": session_id, "a": agent_id},
    )
    return int(found["agent"]["lastMessage"]["messageId"]) + 1


@needs_chromium
def test_a_message_written_through_the_api_appears_without_a_reload(
    seeded: Seeded, browsing: Browsing
) -> None:
    page = browsing.new_page()
    page.goto(seeded.url + "/?session=s-order")
    expect(page.locator(".live-status")).to_have_attribute("data-state", "live")  # subscribed
    page.evaluate("window.stillTheSamePage = true")
    count = page.locator(SUPPORT_TURNS).count()
    next_id = next_message_id(seeded)

    written = time.monotonic()
    seeded.graphql(NEW_MESSAGE, {"id": next_id, "text": "Written while you watch"})
    expect(page.locator(SUPPORT_TURNS).last).to_contain_text("Written while you watch", timeout=5000)
    shown_after = time.monotonic() - written

    assert shown_after < 1.0, f"shown {shown_after:.2f}s after the write"
    assert page.locator(SUPPORT_TURNS).count() == count + 1
    assert page.evaluate("window.stillTheSamePage") is True
    link = page.locator(SUPPORT_TURNS).last.locator("a.permalink")
    assert link.get_attribute("href") == f"?session=s-order#msg:support:{next_id}"
    assert browsing.failed == []


REDACT = """mutation($id: Int!) {
  updateMessage(sessionId: "s-order", agentId: "support", message: {
    messageId: $id, message: {role: "user", content: [{text: "my card is 4111 1111 1111 1111"}]},
    redactMessage: {role: "user", content: [{text: "[card number removed]"}]}
  }) { messageId }
}"""
NEW_AGENT = """mutation {
  createAgent(sessionId: "s-order", agent: {agentId: "billing", state: {}, conversationManagerState: {}}) {
    agentId
  }
  createMessage(sessionId: "s-order", agentId: "billing", message: {
    messageId: 0, message: {role: "user", content: [{text: "Billing joins the conversation"}]}
  }) { messageId }
}"""


@needs_chromium
def test_a_redaction_and_a_new_agent_appear_without_a_reload(seeded: Seeded, browsing: Browsing) -> None:
    page = browsing.new_page()
    next_id = next_message_id(seeded)
    seeded.graphql(NEW_MESSAGE, {"id": next_id, "text": "my card is 4111 1111 1111 1111"})
    page.goto(seeded.url + "/?session=s-order")
    expect(page.locator(".live-status")).to_have_attribute("data-state", "live")
    expect(page.locator(SUPPORT_TURNS).last).to_contain_text("4111")

    seeded.graphql(REDACT, {"id": next_id})
    seeded.graphql(NEW_AGENT)

    redacted = page.locator(f'.turn[data-message-id="{next_id}"]')
    expect(redacted).to_contain_text("[card number removed]")
    expect(redacted.locator(".badge.redacted")).to_be_visible()
    assert "4111" not in redacted.inner_text()
    expect(page.locator("section.agent h2").last).to_have_text("billing")
    expect(page.locator("section.agent").last).to_contain_text("Billing joins the conversation")
    assert browsing.failed == []


@needs_chromium
def test_a_new_session_appears_on_the_list_without_a_reload(seeded: Seeded, browsing: Browsing) -> None:
    page = browsing.new_page()
    page.goto(seeded.url + "/")
    expect(page.locator(".live-status")).to_have_attribute("data-state", "live")
    rows = page.locator("table.sessions tbody tr")
    before = rows.count()

    seeded.graphql(
        'mutation { createSession(session: {sessionId: "s-new", title: "Just started"}) { sessionId } }'
    )

    expect(rows).to_have_count(before + 1)
    expect(rows.first).to_contain_text("Just started")
    assert browsing.failed == []


@needs_chromium
def test_without_websockets_new_messages_still_appear_by_polling(seeded: Seeded, browsing: Browsing) -> None:
    page = browsing.new_page()
    page.route_web_socket(
        re.compile(".*"), lambda socket: socket.close(code=1011, reason="no websockets here")
    )
    page.goto(seeded.url + "/?session=s-order")
    expect(page.locator(".live-status")).to_have_attribute("data-state", "polling", timeout=10_000)
    next_id = next_message_id(seeded)

    seeded.graphql(NEW_MESSAGE, {"id": next_id, "text": "Found by polling"})

    expect(page.locator(SUPPORT_TURNS).last).to_contain_text("Found by polling", timeout=5000)
    assert [failure for failure in browsing.failed if "WebSocket" not in failure] == []


@needs_chromium
def test_after_a_dropped_websocket_the_page_resumes_without_a_gap_or_a_repeat(
    seeded: Seeded, browsing: Browsing
) -> None:
    sockets: list[WebSocketRoute] = []

    def through(socket: WebSocketRoute) -> None:
        socket.connect_to_server()
        sockets.append(socket)

    page = browsing.new_page()
    page.route_web_socket(re.compile(r".*/graphql$"), through)
    page.goto(seeded.url + "/?session=s-order")
    expect(page.locator(".live-status")).to_have_attribute("data-state", "live")
    turns = page.locator(SUPPORT_TURNS)
    before = turns.count()

    sockets[-1].close(code=1012, reason="a replica restarts")
    expect(page.locator(".live-status")).to_have_attribute("data-state", "reconnecting")
    first = next_message_id(seeded)
    seeded.graphql(NEW_MESSAGE, {"id": first, "text": "Written while the page was away"})
    seeded.graphql(NEW_MESSAGE, {"id": first + 1, "text": "And another"})
    expect(page.locator(".live-status")).to_have_attribute("data-state", "live")
    seeded.graphql(NEW_MESSAGE, {"id": first + 2, "text": "Written once it was back"})

    expect(turns.last).to_contain_text("Written once it was back")
    ids = [int(n) for n in turns.evaluate_all("turns => turns.map(t => t.dataset.messageId)")]
    assert ids == sorted(set(ids)) and ids[-3:] == [first, first + 1, first + 2]
    assert turns.count() == before + 3
    assert len(sockets) == 2


LONG_WORD = "x" * 3000


@needs_chromium
def test_long_texts_wrap_and_text_is_readable(seeded: Seeded, browsing: Browsing) -> None:
    seeded.graphql(NEW_MESSAGE, {"id": next_message_id(seeded), "text": f"{LONG_WORD} {HOSTILE * 20}"})
    page = browsing.new_page()
    page.set_viewport_size({"width": 480, "height": 800})
    page.goto(seeded.url + "/?session=s-order")
    expect(page.locator(SUPPORT_TURNS).last).to_contain_text(LONG_WORD)
    page.locator("details.tool summary").first.click()

    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    worst = page.evaluate(CONTRAST)
    page.goto(seeded.url + "/")
    expect(page.locator("table.sessions")).to_be_visible()
    worst_on_list = page.evaluate(CONTRAST)

    assert overflow <= 0
    assert worst["texts"] > 50  # the walk did see the page's texts
    assert worst["ratio"] >= 4.5, worst
    assert worst_on_list["ratio"] >= 4.5, worst_on_list


# WCAG 2's contrast ratio of every visible text against the first opaque background behind it.
CONTRAST = """() => {
  const rgb = (color) => (color.match(/[\\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const linear = [r, g, b].map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2];
  };
  const background = (node) => {
    for (; node; node = node.parentElement) {
      const color = rgb(getComputedStyle(node).backgroundColor);
      if (color.length === 3 || color[3] === 1) return color.slice(0, 3);
    }
    return [255, 255, 255];
  };
  let worst = { ratio: 21, texts: 0 };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let text = walker.nextNode(); text; text = walker.nextNode()) {
    const node = text.parentElement;
    if (!text.textContent.trim() || !node.checkVisibility() || node.closest("noscript")) continue;
    const [a, b] = [luminance(rgb(getComputedStyle(node).color).slice(0, 3)), luminance(background(node))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    worst.texts += Number.isFinite(ratio) ? 1 : 0;
    if (!(ratio >= worst.ratio)) {
      worst = { ...worst, ratio, text: text.textContent.slice(0, 40), class: node.className };
    }
  }
  return worst;
}"""


@needs_chromium
def test_a_message_url_opens_the_session_at_that_message(seeded: Seeded, browsing: Browsing) -> None:
    page = browsing.new_page()
    page.goto(seeded.url + f"/?session=s-order#msg:{quote('support')}:2")

    expect(page.locator(".turn.targeted")).to_have_attribute("data-message-id", "2")
    assert page.evaluate("document.activeElement.id") == "msg:support:2"


@dataclass
class SecuredKeys:
    secured: Secured
    reader: str
    admin: str


@pytest.fixture
def secured_keys(database_url: str) -> Iterator[SecuredKeys]:
    """Made before the browser: Playwright's sync API runs an event loop, and keys are made with
    asyncio.run."""
    with secured_server(database_url) as secured:
        yield SecuredKeys(secured, secured.key("reader", label="viewer"), secured.key("admin", label="ops"))


ACME_SESSION = """mutation {
  createSession(session: {sessionId: "s-acme", title: "Acme's conversation"}) { sessionId }
  createAgent(sessionId: "s-acme", agent: {agentId: "support", state: {}, conversationManagerState: {}}) {
    agentId
  }
  createMessage(sessionId: "s-acme", agentId: "support", message: {
    messageId: 0, message: {role: "user", content: [{text: "Hello from acme"}]}
  }) { messageId }
}"""
ACME_REPLY = """mutation {
  createMessage(sessionId: "s-acme", agentId: "support", message: {
    messageId: 1, message: {role: "assistant", content: [{text: "Acme, live"}]}
  }) { messageId }
}"""


@pytest.mark.parametrize("bound_to", [None, "acme"], ids=["tenantless key", "acme's key"])
@needs_chromium
def test_a_session_of_another_tenant_opens_in_its_tenant_live(
    database_url: str, tmp_path: Path, bound_to: str | None
) -> None:
    with secured_server(database_url) as secured:
        writer = secured.key("writer", tenant="acme", label="agents")
        reader = secured.key("reader", tenant=bound_to, label="viewer")
        assert "errors" not in secured.graphql(ACME_SESSION, key=writer)
        with browser(tmp_path) as browsing:
            page = browsing.new_page()
            page.goto(secured.server.base_url + "/")
            page.get_by_label("API key").fill(reader)
            page.get_by_label("API key").press("Enter")
            page.get_by_role("link", name="Acme's conversation").click()
            expect(page.locator(".turn")).to_contain_text("Hello from acme")
            expect(page.locator(".live-status")).to_have_attribute("data-state", "live")
            url = page.url

            assert "errors" not in secured.graphql(ACME_REPLY, key=writer)

            expect(page.locator(".turn").last).to_contain_text("Acme, live")
            failed = browsing.failed

    assert url.endswith("/?session=s-acme&tenant=acme")
    assert [failure for failure in failed if "401" not in failure] == []  # the first request asks for a key


@needs_chromium
def test_on_a_secured_server_the_key_is_typed_once_and_kept_for_the_tab_only(
    secured_keys: SecuredKeys, browsing: Browsing
) -> None:
    secured, reader = secured_keys.secured, secured_keys.reader
    page = browsing.new_page()
    page.goto(secured.server.base_url + "/")
    page.get_by_label("API key").fill("sgq_wrong")
    page.get_by_role("button", name="Open").click()
    expect(page.get_by_role("alert")).to_contain_text("refused")
    page.get_by_label("API key").fill(reader)
    page.get_by_label("API key").press("Enter")
    expect(page.locator("#main")).to_contain_text("0 sessions")
    expect(page.locator(".live-status")).to_have_attribute("data-state", "live")  # the key in connection_init
    page.reload()
    expect(page.locator("#main")).to_contain_text("0 sessions")
    stored = page.evaluate("[sessionStorage.length, localStorage.length, document.cookie]")
    other_tab = browsing.new_page()
    other_tab.goto(secured.server.base_url + "/")
    expect(other_tab.get_by_label("API key")).to_be_visible()
    page.get_by_role("button", name="Forget key").click()
    expect(page.get_by_label("API key")).to_be_visible()

    assert stored == [1, 0, ""]
    assert [failure for failure in browsing.failed if "401" not in failure] == []


# --- Two replicas, paging, the keyboard -----------------------------------------------------------


@pytest.fixture
def other_replica(seeded: Seeded, tmp_path: Path) -> Iterator[ServerProcess]:
    """A second server process on the viewer's database, as another replica behind a load balancer."""
    database_url = seeded.server.settings.database_url
    assert database_url is not None
    replica = ServerProcess(database_url, tmp_path / "replica.log").start()
    try:
        yield replica
    finally:
        replica.stop()


@needs_chromium
def test_an_agent_writing_through_another_replica_is_watched_live(
    seeded: Seeded, other_replica: ServerProcess, browsing: Browsing
) -> None:
    agent = support_agent(f"{other_replica.base_url}/graphql", "s-replicas")
    agent("hello from the other replica")
    page = browsing.new_page()
    page.goto(seeded.url + "/?session=s-replicas")
    expect(page.locator(".live-status")).to_have_attribute("data-state", "live")
    turns = page.locator(SUPPORT_TURNS)
    expect(turns).to_have_count(2)

    waits = []
    for prompt in ["where is order A-17?", 'use lookup_order {"order_id": "A-17"}']:
        before = turns.count()
        written = time.monotonic()
        agent(prompt)
        expect(turns.nth(before)).to_be_attached(timeout=5000)
        waits.append(time.monotonic() - written)

    expect(turns.last).to_contain_text("the tool said: order A-17: shipped")
    assert page.locator("details.tool summary").inner_text().split() == ["lookup_order", "success"]
    # The agent's turn (its model call and writes included) until its first message is on the page.
    assert max(waits) < 1.0, waits
    assert browsing.failed == []


@needs_chromium
def test_the_list_goes_page_by_page_and_back(seeded: Seeded, browsing: Browsing) -> None:
    for number in range(PAGE_SIZE + 1):
        seeded.graphql(
            'mutation($id: String!) { createSession(session: {sessionId: $id, labels: {batch: "paging"}}) '
            "{ sessionId } }",
            {"id": f"s-page-{number:02d}"},
        )
    page = browsing.new_page()
    page.goto(seeded.url + "/?labels=batch%3Dpaging")
    names = page.locator("table.sessions tbody tr td a")
    expect(names).to_have_count(PAGE_SIZE)
    first_page = names.all_inner_texts()

    page.get_by_role("link", name="Older →").click()
    expect(names).to_have_count(1)
    assert names.inner_text() == "s-page-00"
    assert page.get_by_role("link", name="Older →").count() == 0
    page.get_by_role("link", name="← Newer").click()

    expect(names).to_have_count(PAGE_SIZE)
    assert names.all_inner_texts() == first_page == [f"s-page-{n:02d}" for n in range(PAGE_SIZE, 0, -1)]
    assert page.get_by_role("link", name="← Newer").count() == 0
    assert browsing.failed == []


@needs_chromium
def test_the_keyboard_reaches_a_session_and_its_tool_calls(seeded: Seeded, browsing: Browsing) -> None:
    page = browsing.new_page()
    page.goto(seeded.url + "/?labels=user%3Dana")
    expect(page.locator("table.sessions tbody tr")).to_have_count(1)

    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Where is my order?":
            break
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Where is my order?")
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.tagName") == "SUMMARY":
            break
    page.keyboard.press("Space")

    assert page.locator("details.tool").first.get_attribute("open") is not None
    assert browsing.failed == []


@needs_chromium
def test_a_key_revoked_while_the_page_is_open_is_asked_for_again(
    secured_keys: SecuredKeys, browsing: Browsing
) -> None:
    secured = secured_keys.secured
    page = browsing.new_page()
    page.goto(secured.server.base_url + "/")
    page.get_by_label("API key").fill(secured_keys.reader)
    page.get_by_label("API key").press("Enter")
    expect(page.locator(".live-status")).to_have_attribute("data-state", "live")

    revoked = secured.graphql(
        'mutation { revokeApiKey(label: "viewer") { revokedAt } }', key=secured_keys.admin
    )

    assert revoked["data"]["revokeApiKey"]["revokedAt"]
    expect(page.get_by_role("alert")).to_contain_text("The key was refused", timeout=15_000)
    expect(page.get_by_label("API key")).to_be_focused()


@needs_chromium
def test_search_goes_page_by_page(seeded: Seeded, browsing: Browsing) -> None:
    messages = [
        {"messageId": n, "message": {"role": "user", "content": [{"text": f"zephyr number {n}"}]}}
        for n in range(PAGE_SIZE + 1)
    ]
    seeded.graphql(
        """mutation($messages: [MessageInput!]!) {
          createSession(session: {sessionId: "s-search"}) { sessionId }
          createAgent(sessionId: "s-search", agent: {agentId: "a", state: {}, conversationManagerState: {}}) {
            agentId
          }
          appendMessages(sessionId: "s-search", agentId: "a", messages: $messages) { messageId }
        }""",
        {"messages": messages},
    )
    page = browsing.new_page()
    page.goto(seeded.url + "/?q=zephyr")
    hits = page.locator("ol.hits > li")
    expect(hits).to_have_count(PAGE_SIZE)
    first_page = hits.all_inner_texts()

    page.get_by_role("link", name="More results →").click()
    expect(hits).to_have_count(1)
    last = hits.inner_text()
    page.get_by_role("link", name="← First page").click()
    expect(hits).to_have_count(PAGE_SIZE)

    assert hits.all_inner_texts() == first_page
    assert last not in first_page
    assert browsing.failed == []
