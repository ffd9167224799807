"""The schema's root types, composed of one part per feature (``resolvers/<feature>.py``)."""

import strawberry

from graphql_api.resolvers.admin import AdminMutation, AdminQuery
from graphql_api.resolvers.analytics import AnalyticsQuery
from graphql_api.resolvers.conversations import ConversationMutation, ConversationQuery
from graphql_api.resolvers.storage import StorageMutation, StorageQuery


@strawberry.type
class Query(ConversationQuery, AdminQuery, AnalyticsQuery, StorageQuery):
    """Look-ups by id, the admin fields, the listings, search and statistics of analytics, and
    Strands' storage."""


@strawberry.type
class Mutation(ConversationMutation, StorageMutation, AdminMutation):
    """Strands' repository writes, its storage's writes and forks, and the admin's key commands."""
