"""Who may run which root field: the permission matrix, checked once per operation.

The whole operation is checked before any of it runs, so a document mixing an allowed write with
a forbidden delete changes nothing. ``tests/test_access.py`` fails when a root field is missing
from the matrix, so a new field cannot be added without deciding who may use it.
"""

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
)
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension

from graphql_api.auth.identity import Role
from graphql_api.errors import ForbiddenError

QUERY_ROLES: dict[str, Role] = {
    "__typename": Role.READER,
    "__schema": Role.READER,
    "__type": Role.READER,
    "session": Role.READER,
    "sessions": Role.READER,
    "agent": Role.READER,
    "message": Role.READER,
    "multiAgent": Role.READER,
    "agents": Role.READER,
    "messages": Role.READER,
    "searchMessages": Role.READER,
    "conversationStats": Role.READER,
    "toolStats": Role.READER,
    "storageObject": Role.READER,
    "storageKeys": Role.READER,
    "searchStorage": Role.READER,
    "auditEvents": Role.ADMIN,
    "apiKeys": Role.ADMIN,
    "retentionRules": Role.ADMIN,
}
MUTATION_ROLES: dict[str, Role] = {
    "__typename": Role.READER,
    "createSession": Role.WRITER,
    "updateSession": Role.WRITER,
    "createAgent": Role.WRITER,
    "updateAgent": Role.WRITER,
    "createMessage": Role.WRITER,
    "appendMessages": Role.WRITER,
    "updateMessage": Role.WRITER,
    "createMultiAgent": Role.WRITER,
    "updateMultiAgent": Role.WRITER,
    "writeStorageObject": Role.WRITER,
    "forkSession": Role.WRITER,
    "deleteStorageObject": Role.ADMIN,
    "deleteSession": Role.ADMIN,
    "deleteAgent": Role.ADMIN,
    "deleteMessage": Role.ADMIN,
    "deleteMultiAgent": Role.ADMIN,
    "createApiKey": Role.ADMIN,
    "revokeApiKey": Role.ADMIN,
    "deleteSessions": Role.ADMIN,
    "setRetentionRule": Role.ADMIN,
    "removeRetentionRule": Role.ADMIN,
}
SUBSCRIPTION_ROLES: dict[str, Role] = {
    "__typename": Role.READER,
    "messageAdded": Role.READER,
    "messageUpdated": Role.READER,
    "agentUpdated": Role.READER,
    "sessionActivity": Role.READER,
}
ROLES_BY_OPERATION = {"query": QUERY_ROLES, "mutation": MUTATION_ROLES, "subscription": SUBSCRIPTION_ROLES}


KEY_FIELDS = frozenset({"createApiKey", "revokeApiKey"})
"""Root fields whose ``tenant`` argument a tenant's admin may only set to its own tenant."""


def root_fields(document: DocumentNode, operation: OperationDefinitionNode) -> Iterator[FieldNode]:
    """The root fields ``operation`` selects, through fragments; skipped ones included."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    pending: list[SelectionSetNode] = [operation.selection_set]
    seen: set[str] = set()
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                seen.add(selection.name.value)
                fragment = fragments.get(selection.name.value)
                if fragment is not None:
                    pending.append(fragment.selection_set)


def required_role(document: DocumentNode, operation: OperationDefinitionNode) -> tuple[Role, str]:
    """The role the operation needs, and the root field that needs it."""
    roles = ROLES_BY_OPERATION.get(operation.operation.value, {})
    needed, because = Role.READER, ""
    for name in (field.name.value for field in root_fields(document, operation)):
        # A field the matrix does not name needs the highest role: forgetting it fails closed.
        role = roles.get(name, Role.ADMIN)
        if role.rank > needed.rank:
            needed, because = role, name
    return needed, because


def named_tenants(
    document: DocumentNode, operation: OperationDefinitionNode, variables: Mapping[str, Any]
) -> Iterator[tuple[str, Any]]:
    """The ``tenant`` arguments given to key commands: (field, value), literal or from a variable."""
    for field in root_fields(document, operation):
        if field.name.value not in KEY_FIELDS:
            continue
        for argument in field.arguments or ():
            if argument.name.value == "tenant":
                value = argument.value
                if isinstance(value, VariableNode):
                    yield field.name.value, variables.get(value.name.value)
                elif isinstance(value, StringValueNode):
                    yield field.name.value, value.value


class AccessControl(SchemaExtension):
    """Refuses, before execution, an operation any of whose root fields the caller's role lacks,
    or whose key commands name another tenant than a tenant-bound caller's own."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        operation = get_operation_ast(document, context.operation_name) if document else None
        if document is not None and operation is not None:
            caller = context.context.caller
            needed, field = required_role(document, operation)
            if not caller.role.allows(needed):
                raise ForbiddenError(
                    f"{field} needs the {needed} role; these credentials have the {caller.role} role"
                )
            if caller.tenant is not None:
                for key_field, tenant in named_tenants(document, operation, context.variables or {}):
                    if tenant is not None and tenant != caller.tenant:
                        raise ForbiddenError(
                            f"{key_field}: these credentials manage the keys of tenant {caller.tenant!r} only"
                        )
        yield
