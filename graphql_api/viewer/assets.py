"""The viewer's modules, styles and icon, served under /viewer/static without credentials (they hold
no data). They change with this package, so browsers revalidate them (ETag) on every load."""

import os
from pathlib import Path

from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

STATIC_DIRECTORY = Path(__file__).parent / "static"
MOUNT_PATH = "/viewer/static"


class ViewerStaticFiles(StaticFiles):
    def file_response(
        self, full_path: PathLike, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def viewer_static_files() -> Mount:
    return Mount(MOUNT_PATH, app=ViewerStaticFiles(directory=STATIC_DIRECTORY), name="viewer-static")
