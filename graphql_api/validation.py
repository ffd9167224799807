"""Checks on arguments that the GraphQL type system cannot express. Each raises ``InputError``."""

import unicodedata
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

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


@dataclass(frozen=True, slots=True)
class JsonShape:
    """How deep a JSON value nests and how many bytes it takes as stored, each counted only up to a
    bound: past it the walk stops, so a huge or endlessly shared value costs no more."""

    too_deep: bool
    size: int


def _text_size(text: str) -> int:
    # The quoted, escaped form ``db.json_values.dump_json`` writes, in UTF-8.
    return len(encode_basestring(text).encode("utf-8", "surrogatepass"))


def json_shape(value: Any, *, max_depth: int, max_bytes: int) -> JsonShape:
    """Walks ``value`` without recursing; a value referenced twice counts twice, as it is stored twice.

    ``size`` is exactly the length of ``dump_json(value)`` in UTF-8 while it is within ``max_bytes``.
    """
    size = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            size += _text_size(item)
        elif isinstance(item, dict):
            if depth > max_depth:
                return JsonShape(too_deep=True, size=size)
            size += 2 + max(0, len(item) - 1) + len(item)  # braces, commas, colons
            for key, child in item.items():
                size += _text_size(str(key))
                pending.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > max_depth:
                return JsonShape(too_deep=True, size=size)
            size += 2 + max(0, len(item) - 1)
            pending.extend((child, depth + 1) for child in item)
        elif item is True or item is False:
            size += 4 if item else 5
        elif item is None:
            size += 4
        elif isinstance(item, int):
            size += len(str(item))
        elif isinstance(item, float):
            size += len(float.__repr__(item))
        else:
            size += len(str(item))
        if size > max_bytes:
            return JsonShape(too_deep=False, size=size)
    return JsonShape(too_deep=False, size=size)


def too_deep(field: str, max_depth: int) -> LimitError:
    return LimitError(
        ErrorCode.JSON_TOO_DEEP, f"{field}: nests lists and objects more than {max_depth} deep", field
    )


def check_document(field: str, value: Any, *, max_depth: int) -> Any:
    """``value`` nests at most ``max_depth`` deep (its size is bounded by the request's)."""
    if json_shape(value, max_depth=max_depth, max_bytes=2**62).too_deep:
        raise too_deep(field, max_depth)
    return value


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
