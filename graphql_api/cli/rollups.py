"""``session-graphql rollups rebuild | status``: the statistics' rollups, straight in the database.

``rebuild`` recomputes them from the rows, online (readers see the old rollups until it commits;
writers go on), for after a restore, an upgrade or a fix. ``status`` says how far behind the fold is.
"""

import time
from datetime import UTC, datetime

from db.analytics import rollups
from db.engine import Database
from db.startup import StartupError
from graphql_api.auth.identity import check_tenant
from graphql_api.cli.tokens import run_on


def rebuild(url: str, label_keys: tuple[str, ...], tenant: str | None) -> list[str]:
    if tenant is not None:
        try:
            check_tenant(tenant)
        except ValueError as error:
            raise StartupError(str(error)) from None

    async def work(database: Database) -> int:
        # A rebuild of all tenants also adopts the configured label keys; one tenant keeps them.
        keys = label_keys if tenant is None else None
        return await database.run_in_transaction(lambda conn: rollups.rebuild(conn, keys, tenant))

    started = time.perf_counter()
    buckets = run_on(url, work)
    where = f"tenant {tenant}" if tenant is not None else "every tenant"
    kept = ", ".join(label_keys) or "none"
    return [
        f"session-graphql: rollups of {where} rebuilt from the rows: {buckets} buckets in "
        f"{time.perf_counter() - started:.1f} s" + ("" if tenant is not None else f" (label keys: {kept})")
    ]


def status(url: str) -> list[str]:
    async def work(database: Database) -> tuple[rollups.Backlog, list[str]]:
        backlog = await database.run(rollups.backlog, idempotent=True)
        return backlog, await database.run(rollups.label_keys, idempotent=True)

    backlog, keys = run_on(url, work)
    lag = 0.0 if backlog.oldest is None else (datetime.now(UTC) - backlog.oldest).total_seconds()
    return [
        f"queued: {backlog.entries} writes in {backlog.buckets} buckets",
        f"lag: {lag:.1f} s (since the oldest queued write)",
        f"label keys: {', '.join(keys) or 'none'}",
    ]
