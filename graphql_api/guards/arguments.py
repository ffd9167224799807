"""Checks on arguments that the GraphQL type system cannot express. Each raises ``InputError``."""

import json
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from db.json_values import utf8_length
from db.models import ID_LENGTH
from graphql_api.errors import ErrorCode, InputError, LimitError

T = TypeVar("T")
MAX_MESSAGE_ID = 2**31 - 1  # PostgreSQL integer, like GraphQL's Int
FORBIDDEN_ID_CHARACTERS = ("/", "\\")


def checked(field: str, check: Callable[[T], T], value: T) -> T:
    """``check(value)``, whose ``ValueError`` (shared checks the CLI uses too) becomes the
    ``InputError`` naming ``field``: the one way an argument is rejected."""
    try:
        return check(value)
    except ValueError as error:
        raise InputError(field, str(error)) from None


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


def check_content_blocks(field: str, message: Any, most: int) -> None:
    """A message's content blocks are each read for its text, tools and tokens (search and stats):
    400,000 tiny blocks in one message held the server for seconds."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list) and len(content) > most:
        raise LimitError(
            ErrorCode.JSON_TOO_LARGE,
            f"{field}.content: at most {most} content blocks per message, got {len(content)}",
            f"{field}.content",
        )


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
    """Whether a JSON value nests too deep, and else how many bytes it takes as stored (0 if it does)."""

    too_deep: bool
    size: int


_CONTAINERS = frozenset({dict, list})
_is_container = _CONTAINERS.__contains__


def json_nesting(value: Any, max_depth: int, max_nodes: int) -> tuple[bool, int]:
    """Whether ``value`` nests deeper than ``max_depth``, and its values counted up to past
    ``max_nodes``.

    Level by level: each list and object adds its length at once, and its children are searched for
    containers by C loops (``map``, ``any``) before any Python loop runs, so a list of five million
    numbers is over the bound in one step and 400,000 small objects take a fifth of a second.
    """
    if type(value) not in _CONTAINERS:
        return False, 1
    nodes, depth, level = 1, 1, [value]
    while level:
        if depth > max_depth:
            return True, nodes
        below: list[Any] = []
        for item in level:
            nodes += len(item)
            if nodes > max_nodes:
                return False, nodes
            children = item.values() if type(item) is dict else item
            if any(map(_is_container, map(type, children))):
                below.extend([child for child in children if type(child) in _CONTAINERS])
        level, depth = below, depth + 1
    return False, nodes


def dumped_size(value: Any) -> int:
    """Bytes of ``db.json_values.dump_json(value)`` in UTF-8, written by the C encoder.

    NaN and infinities (refused when stored) are measured as Python writes them; ``value`` must
    nest no deeper than the recursion limit allows (check ``json_shape`` first).
    """
    return utf8_length(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))


def json_shape(value: Any, *, max_depth: int) -> JsonShape:
    """Depth first (cheap, and it keeps the encoder from recursing too deep); then, for a value
    within it, its exact size: the length of ``dump_json(value)`` in UTF-8."""
    if json_nesting(value, max_depth, 2**62)[0]:
        return JsonShape(too_deep=True, size=0)
    return JsonShape(too_deep=False, size=stored_size(value))


def stored_size(value: Any) -> int:
    """``dumped_size(value)``, or ``sys.maxsize`` for a value json cannot write (an integer past
    Python's 4,300 digits, nesting past the recursion limit)."""
    try:
        return dumped_size(value)
    except (ValueError, TypeError, RecursionError):
        return sys.maxsize


def too_deep(field: str, max_depth: int) -> LimitError:
    return LimitError(
        ErrorCode.JSON_TOO_DEEP, f"{field}: nests lists and objects more than {max_depth} deep", field
    )


def check_document(field: str, value: Any, *, max_depth: int) -> Any:
    """``value`` nests at most ``max_depth`` deep (its size is bounded by the request's)."""
    if json_nesting(value, max_depth, 2**62)[0]:
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
