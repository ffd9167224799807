"""Moving sessions that Strands' own stores saved into the session store, through its API.

``plan_import(directory)`` finds what a directory holds by file names alone; ``run_import`` then
reads it with Strands' own classes and writes it with ``GraphQLSessionRepository``, so the server's
credentials, tenants, limits and validation apply, and fills in an ``ImportReport``. The
``session-graphql import`` command is this with a progress bar.
"""

from client.importing.plan import ImportPlan, plan_import, run_import
from client.importing.report import ImportReport, Kind
from client.importing.target import ImportStopped, ImportTarget, NoProgress, Progress

__all__ = [
    "ImportPlan",
    "ImportReport",
    "ImportStopped",
    "ImportTarget",
    "Kind",
    "NoProgress",
    "Progress",
    "plan_import",
    "run_import",
]
