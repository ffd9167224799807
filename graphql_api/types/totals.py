"""Running totals of a session's or an agent's messages, kept as they are written."""

import strawberry

from db.records import Totals as StoredTotals


@strawberry.type(description="What a session's or agent's messages add up to.")
class Totals:
    messages: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cache_read_tokens: int
    tool_calls: int
    tool_errors: int = strawberry.field(description="Tool results with status error.")

    @classmethod
    def from_record(cls, totals: StoredTotals) -> "Totals":
        return cls(
            messages=totals.message_count,
            input_tokens=totals.input_tokens,
            output_tokens=totals.output_tokens,
            total_tokens=totals.total_tokens,
            cache_read_tokens=totals.cache_read_tokens,
            tool_calls=totals.tool_calls,
            tool_errors=totals.tool_errors,
        )
