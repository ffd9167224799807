"""Documents before they run: refused by size and shape, parsed and validated once, then cached.

In order: the document's size before it is parsed (``DOCUMENT_TOO_LARGE``); its tokens while it is
parsed (strawberry's ``MaxTokensLimiter``); before validating, its shape, which graphql-core's
rules would otherwise walk at great cost (aliases, the widest selection set, fragments spread out);
then strawberry's depth and alias rules with the rest of validation. Small documents that clients
send again and again are parsed and validated once.
"""

from collections import OrderedDict
from collections.abc import Iterator

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionContext

from graphql_api.errors import ErrorCode, LimitError
from graphql_api.settings import Limits

MAX_SELECTIONS_PER_SET = 200
CACHED_DOCUMENT_CHARACTERS = 8192
CACHE_BUDGET_CHARACTERS = 256 * 1024
"""Only valid documents of up to 8 KB are kept, within 256 K characters in all. A parsed valid
document takes about 60-90 bytes per character (so at most some 25 MB in all); invalid ones, which
are never kept, can take 280 (``{a a a ...}``)."""


class DocumentCache:
    """Valid parsed documents by their text, for the few documents clients send again and again."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, DocumentNode] = OrderedDict()
        self._size = 0

    def get(self, query: str) -> DocumentNode | None:
        document = self._entries.get(query)
        if document is not None:
            self._entries.move_to_end(query)
        return document

    def put(self, query: str, document: DocumentNode) -> None:
        """Keeps ``document``, which must have passed validation, if it is small enough."""
        if len(query) > CACHED_DOCUMENT_CHARACTERS:
            return
        if query not in self._entries:
            self._size += len(query)
        self._entries[query] = document
        while self._size > CACHE_BUDGET_CHARACTERS:
            evicted, _ = self._entries.popitem(last=False)
            self._size -= len(evicted)


def document_cache_extension(cache: DocumentCache, limits: Limits) -> type[SchemaExtension]:
    class CachedDocuments(SchemaExtension):
        """Refuses oversized documents, then serves parse and validation from ``cache``.

        A syntax error is left to strawberry's own parse to report, so it gets its code like any other.
        """

        def __init__(self) -> None:
            self.cached = False

        def on_parse(self) -> Iterator[None]:
            context = self.execution_context
            query = context.query
            if query is not None:
                if len(query) > limits.max_document_bytes or len(query.encode()) > limits.max_document_bytes:
                    raise LimitError(
                        ErrorCode.DOCUMENT_TOO_LARGE,
                        f"the document is over {limits.max_document_bytes} bytes; send values as variables",
                    )
                document = cache.get(query)
                if document is not None:
                    context.graphql_document = document
                    self.cached = True
            yield

        def on_validate(self) -> Iterator[None]:
            context = self.execution_context
            if self.cached:
                context.pre_execution_errors = []  # validated when it was cached
            elif context.graphql_document is not None:
                context.pre_execution_errors = _validate(context, limits)
                if not context.pre_execution_errors and context.query is not None:
                    cache.put(context.query, context.graphql_document)
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
