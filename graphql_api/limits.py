"""Limits on what one operation may ask, checked with its variables known, before it runs.

The length of input lists and the depth of their values are checked before graphql-core coerces
them (which is where 100,000 messages used to stall the event loop), then the rows the operation
may ask for (``QUERY_TOO_COSTLY``), estimated from its page sizes. ``loaders.RowBudget`` holds the
same number while it runs. Size and shape of the document itself: ``graphql_api.documents``.
"""

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    ListTypeNode,
    NamedTypeNode,
    Node,
    NonNullTypeNode,
    OperationDefinitionNode,
    SelectionSetNode,
    TypeNode,
    VariableDefinitionNode,
    VariableNode,
    get_named_type,
    value_from_ast,
)
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension

from graphql_api.errors import ErrorCode, LimitError
from graphql_api.settings import Limits
from graphql_api.types.pagination import LARGEST_DEFAULT_PAGE
from graphql_api.validation import json_shape

ASSUMED_LIST_SIZE = 5
"""Rows assumed for a list without a page size (a session's agents): a typical session has a few.
Where a document meets more, ``loaders.RowBudget`` stops it while it runs."""
PAGE_ARGUMENTS = ("first", "last", "limit")
INPUT_NESTING = 3
"""Levels of input objects around a stored document in a variable (a list of MessageInput)."""


def _count(value: Any) -> int | None:
    return max(0, value) if isinstance(value, int) and not isinstance(value, bool) else None


def _list_input_variables(operation: OperationDefinitionNode, schema: GraphQLSchema) -> Iterator[str]:
    """Variables declared as lists of input objects ([MessageInput!]!)."""
    for definition in operation.variable_definitions or ():
        node: TypeNode = definition.type
        if isinstance(node, NonNullTypeNode):
            node = node.type
        if not isinstance(node, ListTypeNode):
            continue
        inner: TypeNode = node.type
        while isinstance(inner, (ListTypeNode, NonNullTypeNode)):
            inner = inner.type
        if not isinstance(inner, NamedTypeNode):
            continue
        if isinstance(schema.get_type(inner.name.value), GraphQLInputObjectType):
            yield definition.variable.name.value


def variable_uses(document: DocumentNode, operation: OperationDefinitionNode) -> Counter[str]:
    """How many times the operation uses each variable, counting a fragment once per spread."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    uses_of: dict[str, Counter[str]] = {}

    def direct(node: Node) -> tuple[Counter[str], list[str]]:
        found: Counter[str] = Counter()
        spreads: list[str] = []
        pending: list[Node] = [node]
        while pending:
            current = pending.pop()
            if isinstance(current, VariableNode):
                found[current.name.value] += 1
            elif isinstance(current, FragmentSpreadNode):
                spreads.append(current.name.value)
            elif isinstance(current, VariableDefinitionNode):
                continue  # a declaration, not a use
            for key in current.keys:
                child = getattr(current, key, None)
                if isinstance(child, Node):
                    pending.append(child)
                elif isinstance(child, (list, tuple)):
                    pending.extend(item for item in child if isinstance(item, Node))
        return found, spreads

    def total(name: str, seen: frozenset[str]) -> Counter[str]:
        # Fragments cannot spread each other in cycles (validation refused those); ``seen`` only guards.
        if name in uses_of:
            return uses_of[name]
        fragment = fragments.get(name)
        if fragment is None or name in seen:
            return Counter()
        found, spreads = direct(fragment.selection_set)
        for spread in spreads:
            found.update(total(spread, seen | {name}))
        uses_of[name] = found
        return found

    found, spreads = direct(operation.selection_set)
    for spread in spreads:
        found.update(total(spread, frozenset()))
    return found


def check_variables(
    document: DocumentNode,
    operation: OperationDefinitionNode,
    schema: GraphQLSchema,
    variables: Mapping[str, Any],
    limits: Limits,
) -> None:
    """Refuses over-long input lists, over-deep values, and values used so often that the operation
    would handle more than a request body may hold, all before graphql-core coerces them."""
    for name in _list_input_variables(operation, schema):
        value = variables.get(name)
        if isinstance(value, list) and len(value) > limits.max_batch:
            raise LimitError(
                ErrorCode.BATCH_TOO_LARGE,
                f"${name}: at most {limits.max_batch} items per list, got {len(value)}",
                name,
            )
    uses = variable_uses(document, operation)
    expanded = 0
    for name, value in variables.items():
        shape = json_shape(
            value, max_depth=limits.max_json_depth + INPUT_NESTING, max_bytes=limits.max_body_bytes
        )
        if shape.too_deep:
            raise LimitError(
                ErrorCode.JSON_TOO_DEEP,
                f"${name}: nests lists and objects more than {limits.max_json_depth} deep",
                name,
            )
        # A variable used a hundred times inside a literal is a hundred copies once stored.
        expanded += shape.size * max(1, uses.get(name, 0))
        if expanded > limits.max_body_bytes:
            raise LimitError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"the operation uses its variables ({'$' + name} among them) so often that it would store "
                f"more than {limits.max_body_bytes} bytes; send each value once",
                name,
            )


class _Cost:
    """Rows a document may ask for: every object it selects, times the list sizes above it."""

    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any], limits: Limits
    ) -> None:
        self.schema = schema
        self.variables = variables
        self.limits = limits
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    def page_size(self, node: FieldNode, field: GraphQLField) -> int | None:
        """The field's own page size argument, its schema default when not given; None: it has none.

        A connection given neither ``first`` nor ``last`` serves its default page, not everything.
        """
        if "first" in field.args and "last" in field.args:
            asked = [_count(self.argument(node, field, name)) for name in ("first", "last")]
            sizes = [size for size in asked if size is not None]
            return max(sizes) if sizes else LARGEST_DEFAULT_PAGE
        for name in PAGE_ARGUMENTS:
            if name in field.args:
                # An explicit null (or no default) on ``limit`` asks for everything, up to the list maximum.
                size = _count(self.argument(node, field, name))
                return self.limits.max_list_size if size is None else size
        return None

    def argument(self, node: FieldNode, field: GraphQLField, name: str) -> Any:
        given = next((a for a in node.arguments or () if a.name.value == name), None)
        if given is None:
            return field.args[name].default_value
        return value_from_ast(given.value, field.args[name].type, dict(self.variables))

    def of(
        self, selection_set: SelectionSetNode | None, parent: Any, page: int | None, seen: frozenset[str]
    ) -> int:
        if selection_set is None or not isinstance(parent, GraphQLObjectType):
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, page, seen)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                total += self.of(selection.selection_set, target, page, seen)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    target = self.schema.get_type(fragment.type_condition.name.value)
                    total += self.of(fragment.selection_set, target, page, seen | {selection.name.value})
        return total

    def field(
        self, node: FieldNode, parent: GraphQLObjectType, page: int | None, seen: frozenset[str]
    ) -> int:
        if node.name.value.startswith("__"):
            return 0
        field = parent.fields.get(node.name.value)
        if field is None:
            return 0
        named = get_named_type(field.type)
        if not isinstance(named, GraphQLObjectType):
            return 0  # scalars and enums come with their row
        own_page = self.page_size(node, field)
        field_type = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
        if isinstance(field_type, GraphQLList):
            # A list's size is its own page argument, or the one of the connection it belongs to.
            count = own_page if own_page is not None else page if page is not None else ASSUMED_LIST_SIZE
            return count * (1 + self.of(node.selection_set, named, None, seen))
        # An object (a connection, say) passes its page size on to the lists inside it.
        return 1 + self.of(node.selection_set, named, own_page, seen)


def estimate_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any],
    limits: Limits,
) -> int:
    root = schema.get_root_type(operation.operation)
    return _Cost(schema, document, variables, limits).of(operation.selection_set, root, None, frozenset())


class RequestLimits(SchemaExtension):
    """Checks the variables and the cost of the operation about to run (``Context.limits``)."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        operation = get_operation_ast(document, context.operation_name) if document else None
        if document is not None and operation is not None:
            limits: Limits = context.context.limits
            schema = context.schema._schema
            variables = context.variables or {}
            check_variables(document, operation, schema, variables, limits)
            cost = estimate_cost(schema, document, operation, variables, limits)
            if cost > limits.max_cost:
                raise LimitError(
                    ErrorCode.QUERY_TOO_COSTLY,
                    f"the document may ask for about {cost} rows; the limit is {limits.max_cost}: "
                    "ask for smaller pages or fewer fields",
                )
        yield
