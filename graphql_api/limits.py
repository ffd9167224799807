"""Limits on what one document may ask, checked before it runs, and the parsed-document cache.

In order: the document's size before it is parsed (``DOCUMENT_TOO_LARGE``); its tokens while it
is parsed (strawberry's ``MaxTokensLimiter``); its size with fragments spread out, before it is
validated (``DOCUMENT_TOO_LARGE``: fragments spreading others twice over double at each level);
depth and aliases while it is validated (strawberry's depth and alias rules); then, with the
variables known, the length of input lists and the depth of their values (before graphql-core
coerces them, which is where 100,000 messages used to stall the loop) and the rows the document
may ask for (``QUERY_TOO_COSTLY``).
"""

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    ListTypeNode,
    NamedTypeNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    SelectionSetNode,
    TypeNode,
    get_named_type,
    parse,
    value_from_ast,
)
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionContext

from graphql_api.errors import ErrorCode, LimitError
from graphql_api.settings import Limits
from graphql_api.validation import json_depth_over

ASSUMED_LIST_SIZE = 5
"""Rows assumed for a list without a page size (a session's agents): a typical session has a few.
Where a document meets more, ``loaders.RowBudget`` stops it while it runs."""
PAGE_ARGUMENTS = ("first", "last", "limit")
INPUT_NESTING = 3
"""Levels of input objects around a stored document in a variable (a list of MessageInput)."""
MAX_SELECTIONS_PER_SET = 200
CACHED_DOCUMENT_CHARACTERS = 16_384
CACHE_BUDGET_CHARACTERS = 4_000_000
"""The cache keeps parsed small documents only, by their text, within this many characters in all."""


class DocumentCache:
    """Parsed and validated documents by their text, for the few documents clients send again and again.

    Bounded by total text size rather than count, and documents over ``CACHED_DOCUMENT_CHARACTERS``
    are never kept, so distinct huge documents cannot grow the server's memory.
    """

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[DocumentNode, list[GraphQLError] | None]] = OrderedDict()
        self._size = 0

    def get(self, query: str) -> tuple[DocumentNode, list[GraphQLError] | None] | None:
        entry = self._entries.get(query)
        if entry is not None:
            self._entries.move_to_end(query)
        return entry

    def put(self, query: str, document: DocumentNode, errors: list[GraphQLError] | None) -> None:
        if len(query) > CACHED_DOCUMENT_CHARACTERS:
            return
        if query not in self._entries:
            self._size += len(query)
        self._entries[query] = (document, errors)
        while self._size > CACHE_BUDGET_CHARACTERS:
            evicted, _ = self._entries.popitem(last=False)
            self._size -= len(evicted)


def document_cache_extension(cache: DocumentCache, limits: Limits) -> type[SchemaExtension]:
    class CachedDocuments(SchemaExtension):
        """Refuses oversized documents, then serves parse and validation from ``cache``.

        A syntax error is left to strawberry's own parse to report, so it gets its code like any other.
        """

        def on_parse(self) -> Iterator[None]:
            context = self.execution_context
            query = context.query
            if query is not None:
                if len(query) > limits.max_document_bytes or len(query.encode()) > limits.max_document_bytes:
                    raise LimitError(
                        ErrorCode.DOCUMENT_TOO_LARGE,
                        f"the document is over {limits.max_document_bytes} bytes; send values as variables",
                    )
                entry = cache.get(query)
                if entry is not None:
                    context.graphql_document = entry[0]
                elif len(query) <= CACHED_DOCUMENT_CHARACTERS:
                    try:
                        context.graphql_document = parse(query, **context.parse_options)
                    except (GraphQLError, RecursionError):
                        pass
                    else:
                        cache.put(query, context.graphql_document, None)
            yield

        def on_validate(self) -> Iterator[None]:
            context = self.execution_context
            entry = cache.get(context.query) if context.query is not None else None
            if entry is not None and entry[1] is not None:
                context.pre_execution_errors = list(entry[1])
            elif context.graphql_document is not None:
                context.pre_execution_errors = _validate(context, limits)
                if entry is not None and context.graphql_document is entry[0]:
                    cache.put(context.query or "", entry[0], context.pre_execution_errors)
            yield

    return CachedDocuments


def _validate(context: ExecutionContext, limits: Limits) -> list[GraphQLError]:
    """Validation errors of the document; graphql-core raises on some values instead (a 5,000-digit
    integer literal, deep nesting), which are the document's fault too."""
    assert context.graphql_document is not None
    widest, aliases = selection_shape(context.graphql_document)
    if aliases > limits.max_aliases:
        # What strawberry's alias rule says (and how its code is recognised), said before the
        # rules below walk every aliased field.
        message = f"{aliases} aliases found. Allowed: {limits.max_aliases}"
        return [GraphQLError(message, extensions={"code": ErrorCode.TOO_MANY_ALIASES.value})]
    if widest > MAX_SELECTIONS_PER_SET:
        # graphql-core's check that same-named fields merge compares them pairwise: a thousand
        # repeats of one field in one selection set take it over a second. No type has this many fields.
        message = (
            f"a selection set in the document selects more than {MAX_SELECTIONS_PER_SET} fields; "
            "repeat or alias fewer"
        )
        return [GraphQLError(message, extensions={"code": ErrorCode.DOCUMENT_TOO_LARGE.value})]
    if spread_fields_over(context.graphql_document, limits.max_tokens):
        # The depth and alias rules (and the cost estimate) walk the document with its fragments
        # spread out: 20 fragments each spreading the next twice are a million fields to walk.
        message = (
            f"the document selects more than {limits.max_tokens} fields once its fragments are "
            "spread out; spread each fragment fewer times"
        )
        return [GraphQLError(message, extensions={"code": ErrorCode.DOCUMENT_TOO_LARGE.value})]
    try:
        return list(
            validate_document(context.schema._schema, context.graphql_document, context.validation_rules)
        )
    except RecursionError:
        message, code = (
            "The document nests values too deeply for the server to read.",
            ErrorCode.JSON_TOO_DEEP,
        )
    except (ValueError, TypeError, OverflowError):
        message, code = (
            "The document holds a value the server cannot read.",
            ErrorCode.GRAPHQL_VALIDATION_FAILED,
        )
    return [GraphQLError(message, extensions={"code": code.value})]


def selection_shape(document: DocumentNode) -> tuple[int, int]:
    """The most selections any one selection set holds, and the aliases written in the document
    (fragments counted where written, not where spread); found without recursion."""
    widest = aliases = 0
    pending: list[SelectionSetNode] = [
        definition.selection_set
        for definition in document.definitions
        if isinstance(definition, (OperationDefinitionNode, FragmentDefinitionNode))
    ]
    while pending:
        selection_set = pending.pop()
        widest = max(widest, len(selection_set.selections))
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode) and selection.alias is not None:
                aliases += 1
            if isinstance(selection, (FieldNode, InlineFragmentNode)) and selection.selection_set is not None:
                pending.append(selection.selection_set)
    return widest, aliases


def spread_fields_over(document: DocumentNode, limit: int) -> bool:
    """Whether ``document``'s operations select more than ``limit`` fields in all, each fragment spread
    counted as the fields of its fragment; each fragment is counted once, so this takes linear time."""
    own: dict[str, int] = {}
    spreads: dict[str, list[str]] = {}
    operations: list[str] = []
    for number, definition in enumerate(document.definitions):
        if isinstance(definition, FragmentDefinitionNode):
            key = definition.name.value
        elif isinstance(definition, OperationDefinitionNode):
            key = f"operation {number}"  # no fragment name has a space
            operations.append(key)
        else:
            continue
        own[key], spreads[key] = _fields_and_spreads(definition.selection_set)
    sizes: dict[str, int] = {}
    for start in operations:
        # Depth first without recursion (fragments may spread each other a thousand deep); a fragment
        # in a cycle counts as empty, and validation reports the cycle.
        pending: list[tuple[str, bool]] = [(start, False)]
        entered: set[str] = set()
        while pending:
            key, done = pending.pop()
            if key in sizes or key not in own:
                continue
            if done:
                total = own[key] + sum(sizes.get(name, 0) for name in spreads[key])
                sizes[key] = min(total, limit + 1)
            elif key not in entered:
                entered.add(key)
                pending.append((key, True))
                pending.extend((name, False) for name in spreads[key])
        if sum(sizes.get(key, 0) for key in operations) > limit:
            return True
    return False


def _fields_and_spreads(selection_set: SelectionSetNode) -> tuple[int, list[str]]:
    """The fields of a selection set, inline fragments included, and the fragments it spreads."""
    fields, spreads = 0, []
    pending: list[SelectionSetNode] = [selection_set]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                fields += 1
                if selection.selection_set is not None:
                    pending.append(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                spreads.append(selection.name.value)
    return fields, spreads


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


def check_variables(
    operation: OperationDefinitionNode, schema: GraphQLSchema, variables: Mapping[str, Any], limits: Limits
) -> None:
    """Refuses over-long input lists and over-deep values before graphql-core coerces them."""
    for name in _list_input_variables(operation, schema):
        value = variables.get(name)
        if isinstance(value, list) and len(value) > limits.max_batch:
            raise LimitError(
                ErrorCode.BATCH_TOO_LARGE,
                f"${name}: at most {limits.max_batch} items per list, got {len(value)}",
                name,
            )
    for name, value in variables.items():
        if json_depth_over(value, limits.max_json_depth + INPUT_NESTING):
            raise LimitError(
                ErrorCode.JSON_TOO_DEEP,
                f"${name}: nests lists and objects more than {limits.max_json_depth} deep",
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
        """The field's own page size argument, its schema default when not given; None: it has none."""
        for name in PAGE_ARGUMENTS:
            argument = field.args.get(name)
            if argument is None:
                continue
            given = next((a for a in node.arguments or () if a.name.value == name), None)
            value = (
                argument.default_value
                if given is None
                else value_from_ast(given.value, argument.type, dict(self.variables))
            )
            if isinstance(value, int) and not isinstance(value, bool):
                return max(0, value)
            # An explicit null (or no default) on ``limit`` asks for everything, up to the list maximum.
            return self.limits.max_list_size
        return None

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
            check_variables(operation, schema, variables, limits)
            cost = estimate_cost(schema, document, operation, variables, limits)
            if cost > limits.max_cost:
                raise LimitError(
                    ErrorCode.QUERY_TOO_COSTLY,
                    f"the document may ask for about {cost} rows; the limit is {limits.max_cost}: "
                    "ask for smaller pages or fewer fields",
                )
        yield
