"""GraphiQL works without the internet: the page and its assets come from the package, its example
tabs fit the schema, and in a real Chromium that may reach nothing but this machine it runs one."""

import asyncio
import base64
import hashlib
import importlib.util
import json
import os
import re
import shutil
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from graphql import OperationDefinitionNode, build_schema, parse, validate
from playwright.sync_api import Route, sync_playwright

from db.migrate import upgrade
from graphql_api.graphiql.page import EXAMPLES, load_examples
from graphql_api.settings import Settings
from tests.conftest import RunningServer
from tests.live_client import connected
from tests.scratch_database import scratch_database
from tests.secured import Secured, secured_server

REPO = Path(__file__).resolve().parent.parent
GRAPHIQL = REPO / "graphql_api" / "graphiql"
MANIFEST = json.loads((GRAPHIQL / "vendor.json").read_text(encoding="utf-8"))
SCHEMA = build_schema((REPO / "schema.graphql").read_text(encoding="utf-8"))
SCREENSHOT = REPO / "docs" / "graphiql.png"
HTML = {"Accept": "text/html"}
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = [  # headless comes from Playwright's own launch options
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK = ("127.0.0.1", "localhost")


class Loads(HTMLParser):
    """The URLs a page makes the browser fetch: scripts, stylesheets, icons; with their integrity."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        url = attributes.get("src") if tag == "script" else attributes.get("href") if tag == "link" else None
        if url is not None:
            self.urls[url] = attributes.get("integrity")


def loads_of(html: str) -> dict[str, str | None]:
    parser = Loads()
    parser.feed(html)
    return parser.urls


def sha384(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def vendored_files() -> Iterator[tuple[dict[str, Any], str]]:
    """Every file of vendor.json: (its bundle, its path under static/vendor/)."""
    for bundle in MANIFEST["bundles"]:
        for name in [file["name"] for file in bundle["files"]] + bundle["licences"]:
            yield bundle, f"{bundle['directory']}/{name}"


@pytest.fixture(scope="module")
def secured(database_url: str) -> Iterator[Secured]:
    with secured_server(database_url) as running:
        yield running


@pytest.fixture(scope="module")
def switched_off(database_url: str) -> Iterator[httpx.Client]:
    server = RunningServer(Settings(database_url=database_url, graphiql=False))
    server.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            yield client
    finally:
        server.stop()


def test_the_page_loads_nothing_from_another_host(http: httpx.Client) -> None:
    page = http.get("/graphql", headers=HTML)
    # The page's own scripts and styles; the icon's xmlns names a namespace, fetches nothing.
    own = [url for url in loads_of(page.text) if "/vendor/" not in url and not url.endswith(".svg")]
    own_files = [http.get(urljoin(str(page.url), url)).text for url in own]

    assert page.status_code == 200
    assert loads_of(page.text), "the page loads no assets at all"
    for url in loads_of(page.text):
        assert not urlsplit(url).scheme and not urlsplit(url).netloc, url
    for text in [page.text, *own_files]:
        for sign in ("://", "unpkg", "jsdelivr", "cdn"):
            assert sign not in text.lower()


def test_every_asset_the_page_loads_is_served_without_credentials(secured: Secured) -> None:
    page = secured.http.get("/graphql", headers=HTML)

    assert page.status_code == 200
    for url, integrity in loads_of(page.text).items():
        asset = secured.http.get(urljoin(str(page.url), url))
        assert asset.status_code == 200, url
        assert asset.headers["content-type"] == CONTENT_TYPES[Path(url).suffix], url
        assert asset.headers["x-content-type-options"] == "nosniff"
        if "/vendor/" in url:
            assert integrity == sha384(asset.content), url
            assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        else:
            assert asset.headers["cache-control"] == "no-cache"  # the page's own files change with ours


def test_every_vendored_package_is_served_with_its_licence(http: httpx.Client) -> None:
    for bundle in MANIFEST["bundles"]:
        for licence in bundle["licences"]:
            served = http.get(f"/graphiql/static/vendor/{bundle['directory']}/{licence}")

            assert served.status_code == 200
            assert served.headers["content-type"] == "text/plain; charset=utf-8"
            assert "Permission is hereby granted, free of charge" in served.text, (bundle["package"], licence)


def test_the_vendored_files_are_those_the_update_script_pinned_and_nothing_else() -> None:
    spec = importlib.util.spec_from_file_location("update", REPO / "scripts" / "update_graphiql_assets.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    vendor = GRAPHIQL / "static" / "vendor"

    pinned = [(b.name, b.version, script.TARBALLS[b.spec], b.directory) for b in script.BUNDLES]
    listed = [
        (b["package"], b["version"], b["tarball_integrity"], b["directory"]) for b in MANIFEST["bundles"]
    ]
    assert listed == pinned, "vendor.json is stale: run scripts/update_graphiql_assets.py"
    for bundle in MANIFEST["bundles"]:
        for file in bundle["files"]:
            data = (vendor / bundle["directory"] / file["name"]).read_bytes()
            assert sha384(data) == file["integrity"], file["name"]
    on_disk = sorted(str(path.relative_to(vendor)) for path in vendor.rglob("*") if path.is_file())
    assert on_disk == sorted(path for _, path in vendored_files())


def test_graphiql_and_its_assets_are_not_served_when_switched_off(switched_off: httpx.Client) -> None:
    page = switched_off.get("/graphql", headers=HTML)
    asset = switched_off.get("/graphiql/static/page.js")

    assert page.status_code == 404
    assert page.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert asset.status_code == 404


def test_the_page_allows_scripts_and_styles_only_from_this_server(http: httpx.Client) -> None:
    policy = http.get("/graphql", headers=HTML).headers["content-security-policy"]
    directives = {name: sources for name, *sources in (part.split() for part in policy.split(";"))}

    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"][0] == "'self'"
    assert all(source.startswith("'sha256-") for source in directives["style-src"][1:])
    assert directives["connect-src"] == ["'self'"]
    assert "unsafe" not in policy


def test_the_page_opens_with_the_examples_as_tabs(http: httpx.Client) -> None:
    page = http.get("/graphql", headers=HTML).text
    start = page.index('<script type="application/json" id="graphiql-examples">')
    data = page[page.index(">", start) + 1 : page.index("</script>", start)]

    assert json.loads(data) == load_examples()
    assert len(load_examples()) >= 4
    assert '{"Authorization": "Bearer sgq_..."}' in load_examples()[0]


def operation_name(document: str) -> str:
    named = re.search(r"^(?:query|mutation|subscription)\s+(\w+)", document, re.MULTILINE)
    return named[1] if named else "unnamed"


@pytest.mark.parametrize("document", load_examples(), ids=operation_name)
def test_an_example_is_one_named_operation_valid_against_schema_graphql(document: str) -> None:
    parsed = parse(document)
    operations = [node for node in parsed.definitions if isinstance(node, OperationDefinitionNode)]

    assert validate(SCHEMA, parsed) == [], f"{EXAMPLES.name} no longer fits schema.graphql"
    assert len(operations) == len(parsed.definitions) == 1
    assert operations[0].name is not None  # the tab's title


SEED = """
mutation {
  createSession(session: { sessionId: "s-1", title: "Greeting", labels: { user: "ana", channel: "web" } }) {
    sessionId
  }
  createAgent(sessionId: "s-1", agent: { agentId: "support", state: {}, conversationManagerState: {} }) {
    agentId
  }
  appendMessages(sessionId: "s-1", agentId: "support", messages: [
    { messageId: 0, message: { role: "user", content: [{ text: "Hi, I'm Ana." }] } }
    { messageId: 1, message: { role: "assistant", content: [{ text: "Hello Ana!" }], metadata: {
      usage: { inputTokens: 12, outputTokens: 4, totalTokens: 16 }, metrics: { latencyMs: 420 }
    } } }
  ]) { messageId }
}
"""


def is_subscription(document: str) -> bool:
    return (
        operation_name(document) != "unnamed"
        and re.search(r"^subscription\s", document, re.MULTILINE) is not None
    )


async def first_events(base_url: str, document: str, count: int) -> dict[str, Any]:
    """A subscription's first ``count`` events, over a websocket as GraphiQL runs it."""
    async with connected(base_url) as socket:
        await socket.subscribe(document)
        events = [(await socket.receive())["payload"] for _ in range(count)]
    return {"events": events, "errors": [e for event in events for e in event.get("errors", [])] or None}


def test_every_example_runs_without_errors_on_a_seeded_server(database_url: str) -> None:
    with scratch_database(database_url) as url:
        upgrade(url)
        server = RunningServer(Settings(database_url=url))
        server.start()
        try:
            assert "errors" not in httpx.post(server.url, json={"query": SEED}).json()
            answers = {
                operation_name(document): httpx.post(server.url, json={"query": document}).json()
                for document in load_examples()
                if not is_subscription(document)
            }
            for document in filter(is_subscription, load_examples()):
                answers[operation_name(document)] = asyncio.run(first_events(server.base_url, document, 2))
        finally:
            server.stop()

    assert {name: body.get("errors") for name, body in answers.items()} == dict.fromkeys(answers)
    assert [
        event["data"]["messageAdded"]["messageId"] for event in answers["WatchConversation"]["events"]
    ] == [0, 1]
    assert answers["Conversation"]["data"]["session"]["totals"]["messages"] == 2
    assert answers["HourlyByAgent"]["data"]["conversationStats"]["totals"]["totalTokens"] == 16
    assert answers["RecentSessions"]["data"]["sessions"]["totalCount"] == 1
    assert [edge["node"]["messageId"] for edge in answers["Search"]["data"]["searchMessages"]["edges"]] == [1]


# Functions, not expressions: Playwright runs a bare expression through eval(), which the page forbids.
RESULT = "() => document.querySelector('.result-window .CodeMirror').CodeMirror.getValue()"
WATCH_CSP = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => window.cspViolations.push(e.violatedDirective));
"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_graphiql_runs_the_first_example_in_chromium_with_no_internet(
    database_url: str, tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    with scratch_database(database_url) as url:
        upgrade(url)
        server = RunningServer(Settings(database_url=url))
        server.start()
        try:
            assert "errors" not in httpx.post(server.url, json={"query": SEED}).json()
            expected = httpx.post(server.url, json={"query": load_examples()[0]}).json()
            outside: list[str] = []
            failed: list[str] = []

            def only_loopback(route: Route) -> None:
                if urlsplit(route.request.url).hostname in LOOPBACK:
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort("internetdisconnected")

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch_persistent_context(
                    tmp_path / "profile",
                    executable_path=CHROMIUM,
                    args=CHROMIUM_FLAGS,
                    viewport={"width": 1280, "height": 720},
                )
                browser.route("**/*", only_loopback)
                browser.add_init_script(WATCH_CSP)
                page = browser.new_page()
                page.on("pageerror", lambda error: failed.append(str(error)))
                page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
                page.on("requestfailed", lambda request: failed.append(request.url))

                page.goto(server.url)
                page.wait_for_selector(".graphiql-query-editor .CodeMirror", timeout=10_000)
                tabs = page.locator(".graphiql-tab").all_inner_texts()
                page.click(".graphiql-execute-button")
                page.wait_for_function(f"() => ({RESULT})().length > 0", timeout=10_000)
                shown = json.loads(page.evaluate(RESULT))
                page.screenshot(path=tmp_path / "graphiql.png")
                page.get_by_label("Show GraphiQL Explorer").click()
                page.get_by_text("multiAgents", exact=True).first.wait_for()
                page.get_by_label("Open settings dialog").click()
                page.get_by_text("Persist headers").wait_for()
                violations = page.evaluate("window.cspViolations")
                browser.close()
        finally:
            server.stop()

    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "graphiql.png", SCREENSHOT)
    assert outside == []
    assert violations == []
    assert failed == []
    assert [tab.strip() for tab in tabs] == [operation_name(document) for document in load_examples()]
    assert shown == expected
    assert shown["data"]["session"]["agents"][0]["messageCount"] == 2


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_graphiql_runs_the_subscription_tab_and_shows_a_new_message_live(
    database_url: str, tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    with scratch_database(database_url) as url:
        upgrade(url)
        server = RunningServer(Settings(database_url=url))
        server.start()
        try:
            assert "errors" not in httpx.post(server.url, json={"query": SEED}).json()
            failed: list[str] = []
            outside: list[str] = []

            def only_loopback(route: Route) -> None:
                if urlsplit(route.request.url).hostname in LOOPBACK:
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort("internetdisconnected")

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch_persistent_context(
                    tmp_path / "profile", executable_path=CHROMIUM, args=CHROMIUM_FLAGS
                )
                browser.route("**/*", only_loopback)
                browser.add_init_script(WATCH_CSP)
                page = browser.new_page()
                page.on("pageerror", lambda error: failed.append(str(error)))
                page.goto(server.url)
                page.wait_for_selector(".graphiql-query-editor .CodeMirror", timeout=10_000)
                page.locator(".graphiql-tab", has_text="WatchConversation").click()
                # GraphiQL takes the tab's operation name a moment after showing its text.
                page.wait_for_timeout(1000)
                page.click(".graphiql-execute-button")
                page.wait_for_function(f"() => ({RESULT})().includes('Hello Ana!')", timeout=10_000)
                live = {"messageId": 2, "message": {"role": "user", "content": [{"text": "Still there?"}]}}
                written = httpx.post(
                    server.url,
                    json={
                        "query": 'mutation($m: MessageInput!) { createMessage(sessionId: "s-1", '
                        'agentId: "support", message: $m) { messageId } }',
                        "variables": {"m": live},
                    },
                ).json()
                assert "errors" not in written, written
                page.wait_for_function(f"() => ({RESULT})().includes('Still there?')", timeout=5_000)
                shown = json.loads(page.evaluate(RESULT))
                violations = page.evaluate("window.cspViolations")
                browser.close()
        finally:
            server.stop()

    assert outside == [] and failed == [] and violations == []
    assert shown["data"]["messageAdded"]["messageId"] == 2
