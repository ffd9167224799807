"""Limits on what one operation may ask, checked with its variables known, before it runs, and on
what its answer holds, once it has run.

The length of input lists, the depth of their values and the values they hold in all are checked
before graphql-core coerces them (which is where 100,000 messages used to stall the event loop),
then what the operation will ask for (``graphql_api.guards.cost``): rows (``QUERY_TOO_COSTLY``) and
statistics buckets. A heavy operation then waits for one of its caller's few slots
(``RATE_LIMITED`` if none comes free). While it runs, ``loaders.RowBudget`` holds the rows and
``guards.answer_budget.AnswerBudget`` the bytes of the answer, which is refused whole past them
(``RESPONSE_TOO_LARGE``). Size and shape of the document itself: ``graphql_api.guards.documents``.
"""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLSchema,
    ListTypeNode,
    NamedTypeNode,
    Node,
    NonNullTypeNode,
    OperationDefinitionNode,
    OperationType,
    TypeNode,
    VariableDefinitionNode,
    VariableNode,
)
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension

from db.conversations import reads
from db.records import SessionKey
from graphql_api.context import Context
from graphql_api.errors import ErrorCode, LimitError
from graphql_api.guards.arguments import dumped_size, json_nesting
from graphql_api.guards.cost import HEAVY_COST, estimate, session_lookups, stored_bounds
from graphql_api.settings import Limits

OFF_LOOP_BODY_BYTES = 1024 * 1024
"""Bodies from which the variables are checked in a worker thread."""
INPUT_NESTING = 3
"""Levels of input objects around a stored document in a variable (a list of MessageInput)."""


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
    nodes_left = limits.max_json_nodes
    for name, value in variables.items():
        too_deep, nodes = json_nesting(value, limits.max_json_depth + INPUT_NESTING, nodes_left)
        if too_deep:
            raise LimitError(
                ErrorCode.JSON_TOO_DEEP,
                f"${name}: nests lists and objects more than {limits.max_json_depth} deep",
                name,
            )
        nodes_left -= nodes
        if nodes_left < 0:
            # Counted before anything else looks at the values: each one costs the event loop.
            raise LimitError(
                ErrorCode.JSON_TOO_LARGE,
                f"${name}: the variables hold more than {limits.max_json_nodes} JSON values in all "
                "(objects, lists, strings, numbers); send fewer or larger ones",
                name,
            )
        # A variable used a hundred times inside a literal is a hundred copies once stored; one used
        # once is no larger than the body that brought it.
        if uses.get(name, 0) > 1:
            expanded += dumped_size(value) * uses[name]
        if expanded > limits.max_body_bytes:
            raise LimitError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"the operation uses its variables ({'$' + name} among them) so often that it would store "
                f"more than {limits.max_body_bytes} bytes; send each value once",
                name,
            )


async def check_cost(
    document: DocumentNode,
    operation: OperationDefinitionNode,
    schema: GraphQLSchema,
    variables: Mapping[str, Any],
    request: Context,
) -> bool:
    """Refuses a document that would ask for more rows or statistics buckets than allowed; returns
    whether it is heavy.

    Lists are counted at their bounds; a document over the limit (or heavy) that way but looking
    sessions up by id is counted again at what those sessions hold (one statement), so a session
    of two agents is not refused as if it had twenty, nor a restore of 30 messages counted as 10,000.
    """
    limits = request.limits
    found = estimate(schema, document, operation, variables, limits)
    if found.rows >= min(limits.max_cost, HEAVY_COST):
        lookups = session_lookups(schema, operation, variables)
        if lookups:
            tenant = request.scope.tenant
            keys = [SessionKey(tenant, session_id) for session_id in lookups.values()]
            counts = await request.db.run(lambda conn: reads.stored_counts(conn, keys), idempotent=True)
            stored = {node: stored_bounds(count, limits) for node, count in zip(lookups, counts, strict=True)}
            found = estimate(schema, document, operation, variables, limits, stored)
    if found.rows > limits.max_cost:
        raise LimitError(
            ErrorCode.QUERY_TOO_COSTLY,
            f"the document may ask for about {found.rows} rows; the limit is {limits.max_cost}: "
            "ask for smaller pages, fewer fields or fewer aliases",
        )
    # One chart over the maximum is refused by its field, naming its bucket argument.
    if found.buckets > limits.max_stats_buckets >= found.widest_chart:
        raise LimitError(
            ErrorCode.QUERY_TOO_COSTLY,
            f"the document asks for {found.buckets} statistics buckets; the limit is "
            f"{limits.max_stats_buckets} per request: use longer buckets, a shorter range or fewer aliases",
        )
    return found.heavy


class RequestLimits(SchemaExtension):
    """Checks the variables and the cost of the operation about to run (``Context.limits``), holds
    one of its caller's heavy slots while a heavy one runs, and refuses an answer past its bytes."""

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        request: Context = context.context
        request.operation_name = context.operation_name
        document = context.graphql_document
        operation = get_operation_ast(document, context.operation_name) if document else None
        heavy = False
        if document is not None and operation is not None:
            schema = context.schema._schema
            variables = context.variables or {}
            if request.body_bytes > OFF_LOOP_BODY_BYTES:
                # Counting a few hundred thousand values takes a quarter second: off the event loop,
                # other requests go on meanwhile (measured: /health waited 0.87 s, then 0.48 s).
                await asyncio.to_thread(
                    check_variables, document, operation, schema, variables, request.limits
                )
            else:
                check_variables(document, operation, schema, variables, request.limits)
            heavy = await check_cost(document, operation, schema, variables, request)
        if heavy and request.heavy_requests is not None:
            async with request.heavy_requests.slot(request.caller_bucket):
                yield
        else:
            yield
        if request.answer.exceeded:
            mutation = operation is not None and operation.operation is OperationType.MUTATION
            _refuse_answer(self.execution_context.result, request.answer.refusal(mutation=mutation))


def _refuse_answer(result: Any, refusal: LimitError) -> None:
    """Puts ``refusal`` in place of what the operation answered, in the result strawberry returns."""
    if result is None:
        return
    result.data = None
    result.errors = [GraphQLError(str(refusal), original_error=refusal)]
