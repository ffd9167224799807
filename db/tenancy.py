"""Which tenant's rows a caller reaches: the one place that turns a caller's tenant into SQL.

Every read and write of a session table in ``db.conversations.reads`` and ``db.conversations.writes``
takes a ``Scope`` or a key that carries its tenant, and filters with ``Scope.visible`` or joins on the
key's tenant; nothing in ``db/`` addresses a session by its id alone.
"""

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Table, true

from db.models import DEFAULT_TENANT


@dataclass(frozen=True, slots=True)
class Scope:
    """``tenant`` is where look-ups by id and writes go; ``all_tenants`` widens listings (only).

    A caller bound to a tenant gets ``Scope(tenant)``. A caller bound to none (a tenantless admin
    key, or the open server) that names no tenant gets ``Scope(DEFAULT_TENANT, all_tenants=True)``:
    its listings show every tenant's rows, each carrying its tenant, and what it reaches from
    them (an agent of a listed session) stays in that row's tenant.
    """

    tenant: str = DEFAULT_TENANT
    all_tenants: bool = False

    def visible(self, table: Table) -> ColumnElement[bool]:
        """The condition a listing of ``table`` must carry."""
        return true() if self.all_tenants else table.c.tenant == self.tenant


DEFAULT_SCOPE = Scope()
