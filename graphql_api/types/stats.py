"""Conversation statistics and tool statistics, shaped for charts: flat rows, every bucket present."""

from datetime import datetime, timedelta
from enum import Enum

import strawberry

from db.analytics import stats as stored
from db.records import record_of
from graphql_api.types.scalars import Count

DEFAULT_STATS_RANGE = timedelta(days=1)
"""What ``conversationStats`` covers when ``from`` is left out: the day before ``to``."""


@strawberry.enum(description="How long one bucket of a chart is (a WEEK starts on Monday).")
class Bucket(Enum):
    MINUTE = "MINUTE"
    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"


@strawberry.enum(
    description="What one line of a chart is: the whole, or one role, agent, session, tool or label value."
)
class GroupBy(Enum):
    NONE = "NONE"
    ROLE = "ROLE"
    AGENT = "AGENT"
    SESSION = "SESSION"
    TOOL = strawberry.enum_value(
        "TOOL",
        description="Per tool called: the messages calling it, their tokens and latency (a message "
        "calling two tools counts for each), and its calls and errors, at the time of the call.",
    )
    LABEL = "LABEL"


@strawberry.type(description="What the messages of one bucket (and one key) add up to.")
class StatsRow:
    bucket_start: datetime | None = strawberry.field(description="Null in totals.")
    key: str | None = strawberry.field(
        description="The role, agent id, session id, tool name or label value; null without grouping."
    )
    messages: int = strawberry.field(description="Messages (grouped by tool: calls of the tool).")
    sessions: int
    input_tokens: Count
    output_tokens: Count
    total_tokens: Count
    cache_read_tokens: Count
    avg_latency_ms: float | None
    p95_latency_ms: float | None
    tool_calls: int
    tool_errors: int

    @classmethod
    def from_row(cls, row: stored.StatsRow) -> "StatsRow":
        return record_of(cls, row, shared_only=True)


@strawberry.type(description="A chart's rows, each key's totals, and the totals of the whole range.")
class ConversationStats:
    rows: list[StatsRow] = strawberry.field(
        description="Every bucket for every key, empty ones included, oldest first."
    )
    key_totals: list[StatsRow] = strawberry.field(description="Each key over the whole range.")
    totals: StatsRow = strawberry.field(description="All keys over the whole range.")
    from_rollups: bool = strawberry.field(
        description="True when the answer came from the rollups (buckets aggregated ahead of time, "
        "plus the rows of buckets not folded yet): as exact, and its cost does not grow with the "
        "messages. False when every message of the range was read: the grouping or filter is one "
        "the rollups do not keep (MINUTE buckets, SESSION, a label not in SESSION_GRAPHQL_ROLLUP_LABELS, "
        "contentType, toolName, ...). p95LatencyMs from the rollups is within 2% (exact under 64 ms)."
    )

    @classmethod
    def from_stats(cls, found: stored.Stats) -> "ConversationStats":
        return cls(
            rows=[StatsRow.from_row(row) for row in found.rows],
            key_totals=[StatsRow.from_row(row) for row in found.key_totals],
            totals=StatsRow.from_row(found.totals),
            from_rollups=found.from_rollups,
        )


@strawberry.type(description="How often a tool was called and how often its result was an error.")
class ToolStat:
    name: str
    calls: int
    errors: int

    @strawberry.field(description="errors / calls, from 0 to 1.")
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0
