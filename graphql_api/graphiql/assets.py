"""GraphiQL's scripts, styles and their licences, served under /graphiql/static.

They need no credentials: they hold no data, and a browser loads them before anyone has typed
a key into GraphiQL's headers.
"""

import os
from pathlib import Path

from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

STATIC_DIRECTORY = Path(__file__).parent / "static"
MOUNT_PATH = "/graphiql/static"
VERSIONED = "vendor"
"""Its files sit in directories named for their package's version: a new version is a new URL."""
FOREVER = "public, max-age=31536000, immutable"


class GraphiQLStaticFiles(StaticFiles):
    def file_response(
        self, full_path: PathLike, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        versioned = self.get_path(scope).split(os.sep)[0] == VERSIONED
        # The page's own files change with this package, so browsers revalidate them (ETag).
        response.headers["Cache-Control"] = FOREVER if versioned else "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def graphiql_static_files() -> Mount:
    return Mount(MOUNT_PATH, app=GraphiQLStaticFiles(directory=STATIC_DIRECTORY), name="graphiql-static")
