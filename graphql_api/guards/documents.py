"""Documents before they run: refused by size and shape, parsed and validated once, then cached.

In order: the document's size before it is parsed (``DOCUMENT_TOO_LARGE``); its tokens while it is
parsed (strawberry's ``MaxTokensLimiter``); before validating, its shape, which graphql-core's
rules would otherwise walk at great cost: its aliases (``TOO_MANY_ALIASES``), then, each
``DOCUMENT_TOO_LARGE``, the widest selection set, the fields its fragments spread out to, and the
comparisons of same-named fields the rule that fields merge would make (``overlap_work``); then
strawberry's depth and alias rules with the rest of validation. Small documents that clients send
again and again are parsed and validated once.
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
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionContext

from graphql_api.errors import ErrorCode, LimitError
from graphql_api.settings import Limits

MAX_SELECTIONS_PER_SET = 200
MAX_OVERLAP_WORK = 12_000
"""Units of ``overlap_work`` a document may cost, each about a microsecond of graphql-core's
validation (0.5 to 1.7 measured): the costliest documents within it validate in 10 to 30 ms. The
widest selection set allowed, one leaf 200 times, costs 10,150; the client's, GraphiQL's and
Grafana's documents cost under 200."""
FRAGMENT_WORK = 6
"""What the rule that fields merge spends comparing a fragment with another, or with a field, in
``overlap_work``'s units (4.7 to 6.6 microseconds measured)."""
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
    if overlap_work(context.graphql_document, MAX_OVERLAP_WORK) > MAX_OVERLAP_WORK:
        # graphql-core's check that same-named fields merge compares each two of them, and everything
        # below them pair by pair: 200 repeats of a small field, a 7 kB document, take half a second.
        message = (
            "the document repeats fields of one name too often for the server to check that they merge "
            f"(over {MAX_OVERLAP_WORK} comparisons); select each field once per selection set, with "
            "everything wanted below it, rather than repeating it or spreading fragments that repeat it"
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


def overlap_work(document: DocumentNode, limit: int) -> int:
    """An upper bound of the work of graphql-core's rule that same-named fields merge
    (``OverlappingFieldsCanBeMergedRule``), in units of about a microsecond; found in linear time,
    and once past ``limit``, some number over it.

    The rule visits every selection set of more than one selection and gathers the fields there: its
    own, its inline fragments' and, spread out, its fragments'. It compares each two fields of one
    response name together with everything below them, pair by pair: at most ``s1 * s2``
    comparisons, ``s`` being the fields and argument values at and below a field, fragments spread
    out (half a unit for two simple leaves, which it tells apart at once). It compares each fragment
    reached with the set's own fields and with each other fragment reached, ``FRAGMENT_WORK`` each.
    Gathering costs a unit a field, and a unit a response name a fragment brings.
    """
    fragments = {
        definition.name.value: definition.selection_set
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    cap = limit + 1  # a size or count this large makes any pair it is in cost over the limit
    levels: dict[int, _Level] = {}  # by the selection set's id
    work = 0
    for selection_set, fields, spread in _below_first(document, fragments):
        level = _Level()
        for field in fields:
            below = levels[id(field.selection_set)].size if field.selection_set else 0
            size = min(1 + _argument_values(field) + below, cap)
            level.add_field((field.alias or field.name).value, size)
        # A fragment whose level is missing is in a cycle: it counts as empty where it recurs.
        reached = [levels[id(fragment)] for fragment in spread if id(fragment) in levels]
        for fragment in reached:
            level.add_fragment(fragment)
            work += len(fragment.by_name)
        level.size, level.fragments = min(level.size, cap), min(level.fragments, cap)
        levels[id(selection_set)] = level
        work += len(fields)
        selections = selection_set.selections
        if len(selections) > 1 or any(isinstance(each, InlineFragmentNode) for each in selections):
            work += level.comparisons(own_fields=len(fields))
        if work > limit:
            break
    return work


class _Level:
    """What a selection set gathers at its level, for ``overlap_work``."""

    def __init__(self) -> None:
        # Its fields and their argument values, and theirs below them, fragments spread out.
        self.size = 0
        # The fragments it reaches, those they spread included (each time it reaches them), and the
        # sum of their squares by fragment it spreads.
        self.fragments = 0
        self.fragment_squares = 0
        # Per response name: its simple leaves, and the sum of its other fields' sizes and squares.
        self.by_name: dict[str, list[int]] = {}

    def add_field(self, name: str, size: int) -> None:
        self.size += size
        self._add(name, [1, 0, 0] if size == 1 else [0, size, size * size])

    def add_fragment(self, fragment: "_Level") -> None:
        self.size += fragment.size
        reached = 1 + fragment.fragments
        self.fragments += reached
        self.fragment_squares += reached * reached
        for name, totals in fragment.by_name.items():
            self._add(name, totals)

    def comparisons(self, own_fields: int) -> int:
        # The sum of s1 * s2 over pairs is half of (sum of s) squared less the sum of squares.
        fields = sum(
            leaves * (leaves - 1) // 4 + leaves * size_sum + (size_sum * size_sum - square_sum) // 2
            for leaves, size_sum, square_sum in self.by_name.values()
        )
        # Two fragments spread here are compared, and each with what the other reaches.
        pairs = (self.fragments * self.fragments - self.fragment_squares) // 2
        return fields + FRAGMENT_WORK * (self.fragments * own_fields + pairs)

    def _add(self, name: str, more: list[int]) -> None:
        totals = self.by_name.setdefault(name, [0, 0, 0])
        for index, value in enumerate(more):
            totals[index] += value


def _argument_values(field: FieldNode) -> int:
    """The values in a field's arguments, lists' and objects' items included: the rule compares
    two fields' arguments value by value."""
    count = 0
    pending: list[ValueNode] = [argument.value for argument in field.arguments or ()]
    while pending:
        value = pending.pop()
        count += 1
        if isinstance(value, ListValueNode):
            pending.extend(value.values)
        elif isinstance(value, ObjectValueNode):
            pending.extend(item.value for item in value.fields)
    return count


def _below_first(
    document: DocumentNode, fragments: dict[str, SelectionSetNode]
) -> Iterator[tuple[SelectionSetNode, list[FieldNode], list[SelectionSetNode]]]:
    """Every selection set of the document but inline fragments' (which are their parent's level),
    with the fields and the fragments at its level, each after the sets below it and the fragments it
    spreads; without recursion. A fragment in a cycle comes after the set that spreads it."""
    entered: set[int] = set()
    gathered: dict[int, tuple[list[FieldNode], list[SelectionSetNode]]] = {}
    pending: list[tuple[SelectionSetNode, bool]] = [
        (definition.selection_set, False)
        for definition in document.definitions
        if isinstance(definition, (OperationDefinitionNode, FragmentDefinitionNode))
    ]
    while pending:
        selection_set, below_done = pending.pop()
        if below_done:
            yield selection_set, *gathered[id(selection_set)]
        elif id(selection_set) not in entered:
            entered.add(id(selection_set))
            fields, spread = gathered[id(selection_set)] = _gathered(selection_set, fragments)
            pending.append((selection_set, True))
            pending.extend((field.selection_set, False) for field in fields if field.selection_set)
            pending.extend((fragment, False) for fragment in spread)


def _gathered(
    selection_set: SelectionSetNode, fragments: dict[str, SelectionSetNode]
) -> tuple[list[FieldNode], list[SelectionSetNode]]:
    """The fields of a selection set, its inline fragments' included, and the fragments it spreads
    (each once, as the rule takes them)."""
    fields: list[FieldNode] = []
    spread: dict[str, SelectionSetNode] = {}
    pending = [selection_set]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                fields.append(selection)
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value in fragments:
                spread[selection.name.value] = fragments[selection.name.value]
    return fields, list(spread.values())
