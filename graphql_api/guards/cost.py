"""What a document will ask of the server, estimated from the document and its variables alone.

Rows: every object the answer will hold, each alias on its own, times the sizes of the lists above
it: a page argument, or the list's bound (``LIST_BOUNDS``); a ``conversationStats`` holds its
buckets times its keys. Under a look-up of a session by id the lists can be bounded by what the
session holds (``session_lookups``, ``stored_bounds``). Also the statistics buckets the document
asks for in all, and whether it is heavy: it reads statistics, search results or storage
objects, or many rows. ``loaders.RowBudget`` and the answer's byte budget
(``graphql_api.execution``) hold the same lines while it runs.
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    type_from_ast,
    value_from_ast,
)

from db.analytics.stats import STEPS
from db.conversations.reads import StoredCounts
from graphql_api.settings import Limits
from graphql_api.types.pagination import LARGEST_DEFAULT_PAGE
from graphql_api.types.scalars import EPOCH, parse_time
from graphql_api.types.stats import DEFAULT_STATS_RANGE

ASSUMED_LIST_SIZE = 5
"""Rows assumed for a list bounded only by the row it belongs to (a message's tool calls)."""
LIST_BOUNDS: dict[tuple[str, str], Callable[[Limits], int]] = {
    ("Agent", "messages"): lambda limits: limits.max_list_size,
    ("AgentSnapshot", "messages"): lambda limits: limits.max_list_size,
    ("Session", "agents"): lambda limits: limits.assumed_nested_list,
    ("Session", "multiAgents"): lambda limits: limits.assumed_nested_list,
    ("Agent", "checkpoints"): lambda limits: limits.assumed_nested_list,
    ("Agent", "snapshots"): lambda limits: limits.assumed_nested_list,
}
"""Lists without a page size of their own (type, field), at what the estimate counts for them."""
DERIVED_TYPES = frozenset({"Totals", "Usage", "ToolCall", "ToolResult", "PageInfo"})
"""Objects made from the row they belong to, as its scalars are: no rows of their own."""
PAGE_ARGUMENTS = ("first", "last", "limit")
HEAVY_FIELDS = frozenset(
    {"conversationStats", "toolStats", "searchMessages", "searchStorage", "storageObject"}
)
"""Root fields whose cost is not in rows: a scan, a ranking, or up to 10 MiB read at once."""
LOOKUPS = frozenset({"session", "agent"})
"""Root look-ups whose lists are bounded by what their session holds (``session_lookups``)."""
HEAVY_COST = 10_000
"""Rows from which any document counts as heavy (a restore of ten thousand messages)."""


@dataclass(frozen=True, slots=True)
class Bounds:
    """The most items of each list without a page size of its own; ``stored``: counted from what a
    session holds, so that even a list given a larger ``limit`` returns no more."""

    sizes: Mapping[tuple[str, str], int] = field(default_factory=dict)
    stored: bool = False


@dataclass(frozen=True, slots=True)
class Estimate:
    rows: int
    buckets: int
    """Statistics buckets (of every ``conversationStats``) the document asks for."""
    widest_chart: int
    """The most buckets one ``conversationStats`` asks for (it refuses too many itself)."""
    heavy: bool


def _count(value: Any) -> int | None:
    """A page size: an integer, or a float graphql-core would coerce to one (1000.0)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return max(0, value) if isinstance(value, int) and not isinstance(value, bool) else None


def _instant(value: Any) -> datetime | None:
    """A time argument: coerced from a literal, or as a variable sent it (not coerced yet)."""
    if isinstance(value, datetime):
        return value
    try:
        return parse_time(value) if isinstance(value, (str, int, float)) else None
    except (ValueError, TypeError, OverflowError, GraphQLError):  # the field refuses it, with a message
        return None


def _enum_name(value: Any) -> str | None:
    """An enum argument: a member from a literal, its name from a variable."""
    found = getattr(value, "value", value)
    return found if isinstance(found, str) else None


def variables_with_defaults(
    schema: GraphQLSchema, operation: OperationDefinitionNode, variables: Mapping[str, Any]
) -> dict[str, Any]:
    """The variables as sent, with the defaults the operation declares for those left out: the
    estimate reads them before graphql-core coerces them."""
    found = dict(variables)
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if name not in found and definition.default_value is not None:
            kind = type_from_ast(schema, definition.type)
            if kind is not None:
                found[name] = value_from_ast(definition.default_value, kind)  # type: ignore[arg-type]
    return found


class _Cost:
    """Rows a document may ask for: every object it selects, times the list sizes above it."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        variables: dict[str, Any],
        limits: Limits,
        stored: Mapping[int, Bounds],
    ) -> None:
        self.schema = schema
        self.stored = stored
        self.variables = variables
        self.limits = limits
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.buckets = 0
        self.widest_chart = 0
        self.heavy_fields = 0

    def page_size(self, node: FieldNode, field: GraphQLField, bound: int) -> int | None:
        """The field's own page size argument, its schema default when not given; None: it has none.

        A connection given neither ``first`` nor ``last`` serves its default page, not everything;
        a list given no ``limit`` returns at most ``bound``.
        """
        if "first" in field.args and "last" in field.args:
            asked = [_count(self.argument(node, field, name)) for name in ("first", "last")]
            sizes = [size for size in asked if size is not None]
            return max(sizes) if sizes else LARGEST_DEFAULT_PAGE
        for name in PAGE_ARGUMENTS:
            if name in field.args:
                size = _count(self.argument(node, field, name))
                return bound if size is None else size
        return None

    def argument(self, node: FieldNode, field: GraphQLField, name: str) -> Any:
        given = next((a for a in node.arguments or () if a.name.value == name), None)
        if given is None:
            return field.args[name].default_value
        return value_from_ast(given.value, field.args[name].type, self.variables)

    def selects(self, selection_set: SelectionSetNode | None, name: str, seen: frozenset[str]) -> bool:
        """Whether the selection set asks for field ``name`` (in its fragments too)."""
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode) and selection.name.value == name:
                return True
            if isinstance(selection, InlineFragmentNode) and self.selects(
                selection.selection_set, name, seen
            ):
                return True
            if isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                fragment = self.fragments.get(selection.name.value)
                spread = seen | {selection.name.value}
                if fragment is not None and self.selects(fragment.selection_set, name, spread):
                    return True
        return False

    def of(
        self,
        selection_set: SelectionSetNode | None,
        parent: Any,
        page: int | None,
        seen: frozenset[str],
        bounds: Bounds,
    ) -> int:
        if selection_set is None or not isinstance(parent, GraphQLObjectType):
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, page, seen, bounds)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                total += self.of(selection.selection_set, target, page, seen, bounds)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    target = self.schema.get_type(fragment.type_condition.name.value)
                    spread = seen | {selection.name.value}
                    total += self.of(fragment.selection_set, target, page, spread, bounds)
        return total

    def field(
        self,
        node: FieldNode,
        parent: GraphQLObjectType,
        page: int | None,
        seen: frozenset[str],
        bounds: Bounds,
    ) -> int:
        name = node.name.value
        if name.startswith("__"):
            return 0
        field = parent.fields.get(name)
        if field is None:
            return 0
        if parent is self.schema.query_type and name in HEAVY_FIELDS:
            self.heavy_fields += 1
        named = get_named_type(field.type)
        if not isinstance(named, GraphQLObjectType) or named.name in DERIVED_TYPES:
            return 0  # scalars, enums and derived objects come with their row
        if parent is self.schema.query_type:
            if name == "conversationStats":
                return self.statistics(node, field, seen)
            bounds = self.stored.get(id(node), bounds)
        bound = bounds.sizes.get((parent.name, name), ASSUMED_LIST_SIZE)
        own_page = self.page_size(node, field, bound)
        if own_page is not None and bounds.stored and (parent.name, name) in bounds.sizes:
            own_page = min(own_page, bound)  # no page holds more than is stored
        field_type = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
        if isinstance(field_type, GraphQLList):
            # A list's size is its own page argument, the one of the connection it belongs to, or
            # its bound.
            count = own_page if own_page is not None else page if page is not None else bound
            return count * (1 + self.of(node.selection_set, named, None, seen, bounds))
        # An object (a connection, say) passes its page size on to the lists inside it.
        return 1 + self.of(node.selection_set, named, own_page, seen, bounds)

    def statistics(self, node: FieldNode, field: GraphQLField, seen: frozenset[str]) -> int:
        """A chart: the rows it is asked for, a row per bucket and key; the keys' totals; the total."""
        step = STEPS.get(_enum_name(self.argument(node, field, "bucket")) or "HOUR", STEPS["HOUR"])
        end = _instant(self.argument(node, field, "to")) or datetime.now(UTC)
        start = _instant(self.argument(node, field, "from")) or end - DEFAULT_STATS_RANGE
        # From the start's bucket as UTC cuts it; one in another zone may be one more or less.
        aligned = start - (start - EPOCH) % step
        buckets = max(1, math.ceil((end - aligned) / step)) if start < end else 1
        self.buckets += buckets
        self.widest_chart = max(self.widest_chart, buckets)
        group_by = _enum_name(self.argument(node, field, "groupBy"))
        keys = 1 if group_by in (None, "NONE") else self.limits.max_stats_keys
        rows = buckets * keys if self.selects(node.selection_set, "rows", seen) else 0
        return rows + keys + 1


def estimate(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any],
    limits: Limits,
    stored: Mapping[int, Bounds] | None = None,
) -> Estimate:
    """The estimate, lists at their bounds; under the root fields ``stored`` names (by ``id``), at
    the bounds it gives them (``stored_bounds``)."""
    root = schema.get_root_type(operation.operation)
    values = variables_with_defaults(schema, operation, variables)
    cost = _Cost(schema, document, values, limits, stored or {})
    rows = cost.of(operation.selection_set, root, None, frozenset(), largest_bounds(limits))
    return Estimate(
        rows=rows,
        buckets=cost.buckets,
        widest_chart=cost.widest_chart,
        heavy=cost.heavy_fields > 0 or rows >= HEAVY_COST,
    )


def largest_bounds(limits: Limits) -> Bounds:
    return Bounds({list_field: bound(limits) for list_field, bound in LIST_BOUNDS.items()})


def session_lookups(
    schema: GraphQLSchema, operation: OperationDefinitionNode, variables: Mapping[str, Any]
) -> dict[int, str]:
    """The root ``session`` and ``agent`` look-ups of a query (by ``id`` of their node) and the
    session each reads: what is stored there bounds their lists better than the largest bounds."""
    query = schema.query_type
    if operation.operation is not OperationType.QUERY or query is None:
        return {}
    values = variables_with_defaults(schema, operation, variables)
    found: dict[int, str] = {}
    pending = [operation.selection_set]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FieldNode) and selection.name.value in LOOKUPS:
                argument = next((a for a in selection.arguments or () if a.name.value == "sessionId"), None)
                if argument is None:
                    continue
                session_id = value_from_ast(argument.value, GraphQLString, values)
                if isinstance(session_id, str):
                    found[id(selection)] = session_id
    return found


def stored_bounds(counts: StoredCounts, limits: Limits) -> Bounds:
    """The list bounds under a look-up of a session holding ``counts``: what it holds."""
    held = {
        ("Session", "agents"): counts.agents,
        ("Session", "multiAgents"): counts.multi_agents,
        ("Agent", "messages"): counts.most_messages,
        ("Agent", "checkpoints"): counts.most_checkpoints,
        ("Agent", "snapshots"): counts.most_checkpoints,
    }
    # One more than the largest list: a list without a limit reads that many to refuse the rest.
    most = limits.max_list_size + 1
    sizes = {**largest_bounds(limits).sizes, **{key: min(count, most) for key, count in held.items()}}
    return Bounds(sizes, stored=True)
