"""Running totals of a session's or an agent's messages, kept as they are written."""

import strawberry

from db.records import Totals as StoredTotals
from db.records import record_of


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
        return record_of(cls, totals, shared_only=True, messages=totals.message_count)
