"""The GraphiQL page: strawberry's, loading its assets from this server and opening the examples as tabs."""

import json
import re
from functools import cache
from pathlib import Path
from string import Template

from starlette.responses import HTMLResponse

HERE = Path(__file__).parent
EXAMPLES = HERE / "examples.graphql"
STATIC_URL = "graphiql/static"
"""Relative to /graphql, so a proxy that serves the API under a prefix serves these under it too."""
SCROLL_LOCK_STYLE = "sha256-Y/huXlwoYkVyQlxwSVcCi1RCDGDCSVBzDt0hYP9qlTc="
SEPARATOR = re.compile(r"^# ---[ \t]*$", re.MULTILINE)

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        # GraphiQL's dialogs add one <style> element (react-remove-scroll-bar's scroll lock); its text
        # is fixed because page.css gives the body no scrollbar and no margin.
        f"style-src 'self' '{SCROLL_LOCK_STYLE}'",
        # GraphiQL's stylesheet carries its fonts and icons as data: URLs.
        "font-src data:",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)


def load_examples() -> list[str]:
    """The documents of ``examples.graphql``, separated by ``# ---`` lines: one tab each, in order."""
    parts = (part.strip() for part in SEPARATOR.split(EXAMPLES.read_text(encoding="utf-8")))
    return [part + "\n" for part in parts if part]


def _vendor_tags() -> tuple[str, str]:
    """The stylesheet and script tags of vendor.json's files, in the order it lists them."""
    manifest = json.loads((HERE / "vendor.json").read_text(encoding="utf-8"))
    stylesheets: list[str] = []
    scripts: list[str] = []
    for bundle in manifest["bundles"]:
        for file in bundle["files"]:
            url = f"{STATIC_URL}/vendor/{bundle['directory']}/{file['name']}"
            if file["name"].endswith(".css"):
                stylesheets.append(f'<link rel="stylesheet" href="{url}" integrity="{file["integrity"]}" />')
            else:
                scripts.append(f'<script src="{url}" integrity="{file["integrity"]}"></script>')
    return "\n    ".join(stylesheets), "\n    ".join(scripts)


def _script_data(value: object) -> str:
    """JSON that cannot end the <script> element holding it, nor open a comment in it."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@cache
def render_page() -> str:
    stylesheets, scripts = _vendor_tags()
    template = Template((HERE / "page.html").read_text(encoding="utf-8"))
    return template.substitute(
        stylesheets=stylesheets, scripts=scripts, examples=_script_data(load_examples())
    )


def graphiql_response() -> HTMLResponse:
    headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"}
    return HTMLResponse(render_page(), headers=headers)
