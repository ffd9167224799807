"""Checks on arguments that the GraphQL type system cannot express. Each raises ``InputError``."""

import unicodedata
from typing import Any

from db.json_values import dump_json
from db.models import ID_LENGTH
from graphql_api.errors import ErrorCode, InputError, LimitError

MAX_MESSAGE_ID = 2**31 - 1  # PostgreSQL integer, like GraphQL's Int
FORBIDDEN_ID_CHARACTERS = ("/", "\\")


def check_id(field: str, value: str) -> str:
    """Ids name things in URLs, logs and file exports, so they stay plain single-line text."""
    if value == "":
        raise InputError(field, "must not be empty")
    if len(value) > ID_LENGTH:
        raise InputError(field, f"must be at most {ID_LENGTH} characters, got {len(value)}")
    for character in FORBIDDEN_ID_CHARACTERS:
        if character in value:
            raise InputError(field, f"must not contain {character!r}")
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise InputError(field, "must not contain control characters")
    check_unicode(field, value)
    return value


def check_unicode(field: str, value: str) -> str:
    """JSON can smuggle in unpaired surrogates, which no UTF-8 database text can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(field, "must be valid Unicode text (it has an unpaired surrogate)") from None
    return value


def check_message_id(field: str, value: int) -> int:
    if value < 0:
        raise InputError(field, f"must not be negative, got {value}")
    return value


def check_object(field: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(field, f"must be a JSON object, got {_json_kind(value)}")
    return value


def check_optional_object(field: str, value: Any) -> dict[str, Any] | None:
    return None if value is None else check_object(field, value)


def message_role(field: str, message: Any) -> str:
    """A Strands message is an object with a string ``role``; the role is stored as a column too."""
    check_object(field, message)
    role = message.get("role")
    if not isinstance(role, str) or role == "":
        raise InputError(f"{field}.role", "must be a non-empty string")
    if "\x00" in role:
        raise InputError(f"{field}.role", "must not contain NUL characters")
    return check_unicode(f"{field}.role", role)


def check_not_negative(field: str, value: int | None) -> int | None:
    if value is not None and value < 0:
        raise InputError(field, f"must not be negative, got {value}")
    return value


def check_page_size(field: str, value: int, maximum: int) -> int:
    if value < 0 or value > maximum:
        raise InputError(field, f"must be between 0 and {maximum} (the server's maximum), got {value}")
    return value


def json_depth_over(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists and objects more than ``limit`` deep (without recursing)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def check_json_depth(field: str, value: Any, limit: int) -> Any:
    if json_depth_over(value, limit):
        raise LimitError(
            ErrorCode.JSON_TOO_DEEP, f"{field}: nests lists and objects more than {limit} deep", field
        )
    return value


def check_message_size(field: str, message: Any, redact_message: Any, limit: int) -> None:
    """The stored size of one message, its redaction included."""
    size = len(dump_json(message).encode()) + (
        0 if redact_message is None else len(dump_json(redact_message).encode())
    )
    if size > limit:
        raise LimitError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"{field}: is {size} bytes as JSON; the limit is {limit} bytes",
            field,
        )


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
