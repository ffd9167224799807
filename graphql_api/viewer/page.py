"""The viewer's page: the same HTML for every view (the list, a session, a message), which the
page's modules pick from the URL's query and fragment."""

from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path
from string import Template

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

HERE = Path(__file__).parent

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        # 'self' covers the same origin's ws: and wss:, where the live updates come from.
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    # Session ids sit in the page's URL; a link out of the page must not carry them along.
    "Referrer-Policy": "no-referrer",
}


@cache
def render_page(graphiql: bool) -> str:
    """The page, with a link to GraphiQL where the server serves it."""
    template = Template((HERE / "page.html").read_text(encoding="utf-8"))
    return template.substitute(graphiql_link='<a href="graphql">GraphiQL</a>' if graphiql else "")


def viewer_page(*, graphiql: bool) -> Callable[[Request], Awaitable[Response]]:
    """The page holds no data: it is served without credentials, and asks for a key when the API does."""

    async def page(_: Request) -> Response:
        return HTMLResponse(render_page(graphiql), headers=HEADERS)

    return page
