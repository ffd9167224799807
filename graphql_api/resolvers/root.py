"""The schema's root types, composed of one part per feature (``resolvers/<feature>.py``)."""

import strawberry

from graphql_api.resolvers.admin import AdminMutation, AdminQuery
from graphql_api.resolvers.analytics import AnalyticsQuery
from graphql_api.resolvers.conversations import ConversationMutation, ConversationQuery
from graphql_api.resolvers.live import LiveSubscription
from graphql_api.resolvers.retention import RetentionMutation, RetentionQuery
from graphql_api.resolvers.storage import StorageMutation, StorageQuery


@strawberry.type
class Query(ConversationQuery, AdminQuery, AnalyticsQuery, StorageQuery, RetentionQuery):
    """Look-ups by id, the admin fields, the listings, search and statistics of analytics,
    Strands' storage, and the retention rules."""


@strawberry.type
class Mutation(ConversationMutation, StorageMutation, AdminMutation, RetentionMutation):
    """Strands' repository writes, its storage's writes and forks, the admin's key commands, and
    deletes in bulk (retention rules, erasure)."""


@strawberry.type
class Subscription(LiveSubscription):
    """Conversations as they are written (over a websocket at /graphql)."""
