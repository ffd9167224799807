"""How a document runs: graphql-core's executor, charging every value the answer will hold against
the request's byte budget, and letting other requests in while a long list is completed.

Charges are made as values are completed, before the answer is encoded: an alias completing a row
a DataLoader shared is charged again, as its copy will be written again. Each object is charged its
keys and a few bytes per value at once (cached per selection set), each string and stored JSON
document its length. Past the budget, nothing more is resolved and the whole answer is refused with
``RESPONSE_TOO_LARGE`` (``RequestLimits`` swaps it in). Reads of stored documents go through the
budget too (``answer_budget.AnswerBudget.read_within``).
"""

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import orjson
from graphql import (
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLID,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLString,
    Undefined,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.executor import CollectedErrors, Executor
from graphql.pyutils import Path, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField

from db.json_values import StoredJSON
from graphql_api.guards.answer_budget import AnswerBudget
from graphql_api.guards.arguments import stored_size

KEY_BYTES = 4
"""Quotes, colon and comma around each key of an object."""
VALUE_BYTES = 6
"""What a number, a boolean, a null or a string's quotes take, about; strings add their length."""
YIELD_EVERY_SECONDS = 0.01
CHECK_CLOCK_EVERY = 64
"""A list checks the clock every this many items and lets the event loop run once it has held it
for ``YIELD_EVERY_SECONDS``: a 20,000-row chart otherwise holds the loop (and every other request,
``/health`` included) for seconds."""


DEFINITION_BACKREF = GraphQLCoreConverter.DEFINITION_BACKREF
"""Where strawberry keeps its own definition of a graphql-core type or field."""


def written_length(text: str) -> int:
    """Bytes of ``text`` as a JSON string in the answer, escapes included, quotes left out."""
    if text.isascii() and text.isprintable():
        return len(text) + text.count('"') + text.count("\\")
    try:
        return len(orjson.dumps(text)) - 2
    except TypeError:  # a lone surrogate, which the answer's fallback encoder writes as json does
        return len(json.dumps(text, ensure_ascii=False).encode("utf-8", "surrogatepass")) - 2


def encoded_length(value: Any) -> int:
    """Bytes of a JSON value as the answer's encoder (orjson) writes it; what orjson refuses (integers
    beyond 64 bits, lone surrogates) as the fallback encoder writes it."""
    try:
        return len(orjson.dumps(value))
    except TypeError:
        return stored_size(value)


class PlacedErrors(CollectedErrors):
    """graphql-core's field errors, each with the position its null took, so that an answer holds
    the same errors, in the same order, however the event loop timed the fields that raised them.

    graphql-core drops an error raised inside a subtree another error has already nulled, but
    keeps it when it came first; which came first depends on how reads were timed (and on
    FastExecutor's shorter chains of awaits). ``settle`` keeps the errors no other error's null
    covers, as if the outer ones always came first, in the document's order.
    """

    __slots__ = ("_positions",)

    def __init__(self) -> None:
        super().__init__()
        self._positions: list[Path | None] = []

    def add(self, error: GraphQLError, path: Path | None) -> None:
        if self.has_nulled_position(path):
            return
        self._error_positions.add(path)
        self._errors.append(error)
        self._positions.append(path)

    def settle(self) -> None:
        nulled = set(self._positions)
        kept = [
            (error, position)
            for error, position in zip(self._errors, self._positions, strict=True)
            if not _under(position, nulled)
        ]
        kept.sort(key=lambda placed: _document_order(placed[0]))
        self._errors[:] = [error for error, _ in kept]
        self._positions[:] = [position for _, position in kept]


def _under(position: Path | None, nulled: set[Path | None]) -> bool:
    """Whether a null at one of ``nulled`` covers ``position`` (its own is not counted)."""
    if position is None:
        return False
    if None in nulled:
        return True
    parent = position.prev
    while parent is not None:
        if parent in nulled:
            return True
        parent = parent.prev
    return False


def _document_order(error: GraphQLError) -> tuple[Any, ...]:
    """Where an error belongs in the document: its first location, then its path, list indices by
    number."""
    location = error.locations[0] if error.locations else None
    place = (location.line, location.column) if location is not None else (0, 0)
    path = tuple((0, part, "") if isinstance(part, int) else (1, 0, part) for part in error.path or ())
    return (*place, path)


def _object_bytes(grouped_field_set: GroupedFieldSet) -> int:
    return 2 + sum(len(name) + KEY_BYTES + VALUE_BYTES for name in grouped_field_set)


class BudgetedExecutor(StrawberryGraphQLCoreExecutionContext):
    """strawberry's executor, with the answer's bytes charged to ``context.answer``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        found = getattr(self.context_value, "answer", None)
        self.answer: AnswerBudget = found if isinstance(found, AnswerBudget) else AnswerBudget(2**62)
        self.collected_errors = PlacedErrors()
        self._object_sizes: dict[int, tuple[GroupedFieldSet, int]] = {}

    def build_per_event_executor(self, payload: Any) -> Any:
        # Each event of a subscription is an answer of its own, with a budget of its own.
        executor = cast("BudgetedExecutor", super().build_per_event_executor(payload))
        executor.answer = AnswerBudget(self.answer.most)
        executor.collected_errors = PlacedErrors()
        executor._object_sizes = {}
        return executor

    def build_response(self, data: dict[str, Any] | None) -> Any:
        cast(PlacedErrors, self.collected_errors).settle()
        return super().build_response(data)

    def execute_fields(
        self,
        parent_type: Any,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        answer = self.answer
        if answer.left < 0:
            return {}  # the answer is refused whole: nothing below this needs resolving
        kept = self._object_sizes.get(id(grouped_field_set))
        if kept is None:
            # Kept with its grouped field set, so that the id is not reused while this runs: graphql-core
            # lets the root's go once its fields are started.
            kept = self._object_sizes[id(grouped_field_set)] = (
                grouped_field_set,
                _object_bytes(grouped_field_set),
            )
        answer.left -= kept[1]
        return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)

    def execute_fields_serially(
        self,
        parent_type: Any,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        """Mutations one after another, as graphql-core runs them (this server passes no abort
        signal), none once the answer is refused."""

        async def run() -> dict[str, Any]:
            results: dict[str, Any] = {}
            for response_name, field_details_list in grouped_field_set.items():
                if self.answer.left < 0:
                    break
                field_path = Path(path, response_name, parent_type.name)
                result = self.execute_field(
                    parent_type, source_value, field_details_list, field_path, position_context
                )
                if result is Undefined:
                    continue
                results[response_name] = await result if self.is_awaitable(result) else result
            return results

        return run()

    def complete_leaf_value(self, return_type: GraphQLLeafType, result: Any) -> Any:  # type: ignore[override]
        completed = return_type.coerce_output_value(result)
        kind = type(completed)
        if kind is str:
            # Only free text may need escapes: times, base64 and enum names are plain ASCII.
            free = return_type is GraphQLString or return_type is GraphQLID or return_type.name == "JSON"
            self.answer.left -= written_length(completed) if free else len(completed)
        elif kind is StoredJSON:
            self.answer.left -= cast(StoredJSON, completed).size
        elif kind is dict or kind is list:
            self.answer.left -= encoded_length(completed)
        elif completed is None or completed is Undefined:
            return Executor.complete_leaf_value(return_type, result)  # raises graphql-core's error
        return completed

    def complete_iterable_value(
        self,
        item_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        items: Iterable[Any],
        position_context: Any,
    ) -> Any:
        if not isinstance(items, list) or len(items) <= CHECK_CLOCK_EVERY:
            return super().complete_iterable_value(
                item_type, field_details_list, info, path, items, position_context
            )
        return self._complete_long_list(item_type, field_details_list, info, path, items, position_context)

    def _complete_long_list(
        self,
        item_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        items: list[Any],
        position_context: Any,
    ) -> Any:
        """graphql-core's loop over a list's items, in runs of ``CHECK_CLOCK_EVERY``; once it has held
        the event loop for ``YIELD_EVERY_SECONDS`` the rest is completed in a coroutine that lets
        the loop run between runs."""
        completed: list[Any] = []
        awaiting: list[int] = []

        def run_from(position: int) -> int:
            try:
                return self._complete_items(
                    item_type,
                    field_details_list,
                    info,
                    path,
                    items,
                    position,
                    completed,
                    awaiting,
                    position_context,
                    time.monotonic() + YIELD_EVERY_SECONDS,
                )
            except Exception:
                # An error nulling the whole list: what is already running settles in the background.
                self.settle_in_background([completed[index] for index in awaiting])
                raise

        start = run_from(0)
        if start == len(items) and not awaiting:
            return completed

        async def rest() -> list[Any]:
            position = start
            while position < len(items):
                await asyncio.sleep(0)
                position = run_from(position)
            if awaiting:
                found = await gather_with_cancel(*(completed[index] for index in awaiting))
                for index, value in zip(awaiting, found, strict=True):
                    completed[index] = value
            return completed

        return rest()

    def _complete_items(
        self,
        item_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        items: list[Any],
        start: int,
        completed: list[Any],
        awaiting: list[int],
        position_context: Any,
        until: float,
    ) -> int:
        """Completes items from ``start`` until the list is done or the clock passes ``until``;
        returns where it stopped. Awaitable results are left in ``completed``, their index in
        ``awaiting``, as graphql-core leaves them."""
        is_awaitable = self.is_awaitable
        position = start
        while position < len(items):
            for index in range(position, min(position + CHECK_CLOCK_EVERY, len(items))):
                item = items[index]
                item_path = path.add_key(index, None)
                if is_awaitable(item):
                    completed.append(
                        self.complete_awaitable_list_item_value(
                            item, item_type, field_details_list, info, item_path, position_context
                        )
                    )
                    awaiting.append(index)
                elif self.complete_list_item_value(
                    item, completed, item_type, field_details_list, info, item_path, position_context
                ):
                    awaiting.append(index)
            position = min(position + CHECK_CLOCK_EVERY, len(items))
            if time.monotonic() > until:
                break
        return position


@dataclass(frozen=True, slots=True)
class _Plain:
    """A field whose value is an attribute of its source, completed as a leaf: what strawberry's
    basic fields (no resolver, no arguments, no extensions) of scalar and enum types are."""

    attribute: str
    leaf: GraphQLLeafType
    non_null: bool


@dataclass(frozen=True, slots=True)
class _ObjectPlan:
    """How ``FastExecutor`` runs one grouped field set: each field plain (``_Plain``), the type's
    name (``str``) or through graphql-core (``None``)."""

    fields: tuple[tuple[str, FieldDetailsList, "_Plain | str | None"], ...]
    size: int
    """The bytes ``BudgetedExecutor.execute_fields`` charges for the object's keys."""


@dataclass(frozen=True, slots=True)
class _ItemShape:
    """The items of a list of one object type with no ``is_type_of``: each is completed by running
    its grouped field set directly when it is an instance of the type's own class."""

    object_type: GraphQLObjectType
    origin: type
    grouped_field_set: GroupedFieldSet


class FastExecutor(BudgetedExecutor):
    """``BudgetedExecutor`` with shortcuts that leave every answer the same, byte for byte
    (tests/test_fast_paths.py compares the two):

    - a basic strawberry field of a leaf type is read with ``getattr`` and completed in place,
      where graphql-core builds a resolve info, calls strawberry's wrapper and walks
      ``complete_value``: a restore's 10,000 messages have 50,000 such fields;
    - an object in a list of one object type goes straight to its fields, not through
      ``complete_value``, ``complete_object_value`` and ``collect_subfields`` each time.

    Anything unusual (a null where the type forbids it, a value the scalar refuses, an item of
    another class) is handed to graphql-core's own path, which then raises the same error with the
    same path and message it always does. The answer budget is charged the same bytes in the same
    order, so a refusal happens at the same place either way.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # strawberry passes a manager with no middleware unless an extension implements resolve().
        self._wrapped_resolvers = bool(getattr(self.middleware_manager, "middlewares", None))
        self._plans: dict[int, tuple[GroupedFieldSet, _ObjectPlan]] = {}
        self._shapes: dict[tuple[GraphQLOutputType, int], tuple[FieldDetailsList, _ItemShape | None]] = {}

    def build_per_event_executor(self, payload: Any) -> Any:
        executor = cast("FastExecutor", super().build_per_event_executor(payload))
        executor._plans = {}
        executor._shapes = {}
        return executor

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet) -> _ObjectPlan:
        fields: list[tuple[str, FieldDetailsList, _Plain | str | None]] = []
        for response_name, field_details_list in grouped_field_set.items():
            node = field_details_list[0].node
            field_name = node.name.value
            plain: _Plain | str | None = None
            if field_name == "__typename":
                plain = parent_type.name
            else:
                field_def = parent_type.fields.get(field_name)
                if field_def is not None and not any(d.node.arguments for d in field_details_list):
                    plain = _plain_field(field_def)
            fields.append((response_name, field_details_list, plain))
        return _ObjectPlan(tuple(fields), _object_bytes(grouped_field_set))

    def execute_fields(
        self,
        parent_type: Any,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        if self._wrapped_resolvers:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        answer = self.answer
        if answer.left < 0:
            return {}
        kept = self._plans.get(id(grouped_field_set))
        if kept is None:
            plan = self._plan(parent_type, grouped_field_set)
            # Kept with its grouped field set, so that the id is not reused while this runs: graphql-core
            # lets the root's go once its fields are started.
            self._plans[id(grouped_field_set)] = (grouped_field_set, plan)
        else:
            plan = kept[1]
        answer.left -= plan.size
        results: dict[str, Any] = {}
        awaitable_fields: list[str] = []
        complete_leaf_value = self.complete_leaf_value
        try:
            for response_name, field_details_list, plain in plan.fields:
                if isinstance(plain, _Plain):
                    value = getattr(source_value, plain.attribute, Undefined)
                    if value is None and not plain.non_null:
                        results[response_name] = None
                        continue
                    if value is not None and value is not Undefined and not isinstance(value, Exception):
                        try:
                            results[response_name] = complete_leaf_value(plain.leaf, value)
                            continue
                        except Exception:
                            pass
                elif plain is not None:
                    results[response_name] = plain  # __typename
                    answer.left -= len(plain)
                    continue
                field_path = Path(path, response_name, parent_type.name)
                result = self.execute_field(
                    parent_type, source_value, field_details_list, field_path, position_context
                )
                if result is not Undefined:
                    results[response_name] = result
                    if self.is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            if len(awaitable_fields) == 1:
                field = awaitable_fields[0]
                results[field] = await results[field]
            else:
                found = await gather_with_cancel(*(results[field] for field in awaitable_fields))
                results.update(zip(awaitable_fields, found, strict=True))
            return results

        return get_results()

    def _item_shape(
        self, item_type: GraphQLOutputType, field_details_list: FieldDetailsList
    ) -> _ItemShape | None:
        key = (item_type, id(field_details_list))
        cached = self._shapes.get(key)
        if cached is not None:
            return cached[1]
        shape = None
        object_type = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        if isinstance(object_type, GraphQLObjectType) and object_type.is_type_of is None:
            definition = object_type.extensions.get(DEFINITION_BACKREF)
            grouped_field_set, new_defer_usages, _ = self.collect_subfields(object_type, field_details_list)
            if isinstance(definition, StrawberryObjectDefinition) and not new_defer_usages:
                shape = _ItemShape(object_type, definition.origin, grouped_field_set)
        # The list is kept with the shape, so that its id cannot be reused during the operation.
        self._shapes[key] = (field_details_list, shape)
        return shape

    def complete_list_item_value(
        self,
        item: Any,
        complete_results: list[Any],
        item_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        item_path: Path,
        position_context: Any,
    ) -> bool:
        shape = None if position_context is not None else self._item_shape(item_type, field_details_list)
        if shape is None or item.__class__ is not shape.origin:
            return super().complete_list_item_value(
                item, complete_results, item_type, field_details_list, info, item_path, position_context
            )
        try:
            completed = self.execute_fields(shape.object_type, item, item_path, shape.grouped_field_set, None)
        except Exception as raw_error:
            self.handle_field_error(raw_error, item_type, field_details_list, item_path)
            complete_results.append(None)
            return False
        if completed.__class__ is dict:
            complete_results.append(completed)
            return False

        async def await_completed() -> Any:
            try:
                return await completed
            except Exception as raw_error:
                self.handle_field_error(raw_error, item_type, field_details_list, item_path)
                return None

        complete_results.append(await_completed())
        return True


def _plain_field(field_def: GraphQLField) -> _Plain | None:
    """The field as ``_Plain`` when strawberry resolves it with ``getattr`` and it is a leaf."""
    resolve = field_def.resolve
    definition = field_def.extensions.get(DEFINITION_BACKREF)
    if (
        resolve is None
        or resolve.__name__ != "_get_basic_result"
        or not getattr(resolve, "_is_default", False)
        or type(definition) is not StrawberryField
        or definition.base_resolver is not None
        or definition.default_resolver is not getattr
        or field_def.args
    ):
        return None
    return_type = field_def.type
    non_null = isinstance(return_type, GraphQLNonNull)
    leaf = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
    if not isinstance(leaf, GraphQLScalarType | GraphQLEnumType):
        return None
    return _Plain(definition.python_name, leaf, non_null)
