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
from typing import Any, cast

import orjson
from graphql import (
    GraphQLID,
    GraphQLLeafType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLString,
    Undefined,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.executor import Executor
from graphql.pyutils import Path, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

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


def _object_bytes(grouped_field_set: GroupedFieldSet) -> int:
    return 2 + sum(len(name) + KEY_BYTES + VALUE_BYTES for name in grouped_field_set)


class BudgetedExecutor(StrawberryGraphQLCoreExecutionContext):
    """strawberry's executor, with the answer's bytes charged to ``context.answer``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        found = getattr(self.context_value, "answer", None)
        self.answer: AnswerBudget = found if isinstance(found, AnswerBudget) else AnswerBudget(2**62)
        self._object_sizes: dict[int, int] = {}

    def build_per_event_executor(self, payload: Any) -> Any:
        # Each event of a subscription is an answer of its own, with a budget of its own.
        executor = cast("BudgetedExecutor", super().build_per_event_executor(payload))
        executor.answer = AnswerBudget(self.answer.most)
        executor._object_sizes = {}
        return executor

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
        # graphql-core keeps each grouped field set for the whole operation, so its id is stable.
        size = self._object_sizes.get(id(grouped_field_set))
        if size is None:
            size = self._object_sizes[id(grouped_field_set)] = _object_bytes(grouped_field_set)
        answer.left -= size
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


class FastExecutor(BudgetedExecutor):
    """``BudgetedExecutor`` with shortcuts that leave every answer the same, byte for byte."""
