"""How JSON documents are written to and read from the ``json`` columns."""

import json
from typing import Any


def dump_json(value: Any) -> str:
    """Serialize a document for storage.

    ``allow_nan=False`` because PostgreSQL's ``json`` type (like the JSON standard) has no NaN or
    Infinity; ``ensure_ascii=False`` keeps non-ASCII text readable and compact in the database.
    ``\\u0000`` is still written as an escape, which ``json`` (unlike ``jsonb``) accepts.
    """
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def load_json(text: str) -> Any:
    return json.loads(text)


def canonical_json(value: Any) -> str:
    """A form in which two documents are equal exactly when their contents are.

    Key order does not matter; types do (``1``, ``1.0`` and ``true`` differ), which plain
    Python equality would blur.
    """
    return json.dumps(value, ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":"))


def utf8_length(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (lone surrogates as three, as JSON escapes let them through)."""
    # isascii() is a flag check in CPython; only other text pays for an encoding.
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


_UNSET: Any = object()


class StoredJSON:
    """A document as stored, read as its text: answers embed the text as is (no decoding and
    encoding again of every message a restore reads), and code that looks inside decodes it once.

    Made from the text (a query that reads the column as ``text``) or from a decoded value (a
    write's RETURNING), whichever the row held.
    """

    __slots__ = ("_size", "_text", "_value")

    def __init__(self, *, text: str = _UNSET, value: Any = _UNSET) -> None:
        self._text = text
        self._value = value
        self._size = -1

    @classmethod
    def of(cls, stored: Any) -> "StoredJSON":
        return cls(text=stored) if isinstance(stored, str) else cls(value=stored)

    @property
    def value(self) -> Any:
        if self._value is _UNSET:
            self._value = load_json(self._text)
        return self._value

    def parsed(self) -> Any:
        """The document decoded, without keeping the decoded value (``value`` keeps it)."""
        return self._value if self._value is not _UNSET else load_json(self._text)

    @property
    def text(self) -> str:
        if self._text is _UNSET:
            self._text = dump_json(self._value)
        return self._text

    @property
    def size(self) -> int:
        """Bytes of the text in UTF-8: what the document adds to an answer that holds it."""
        if self._size < 0:
            self._size = utf8_length(self.text)
        return self._size

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoredJSON) and canonical_json(self.value) == canonical_json(other.value)

    __hash__ = None  # type: ignore[assignment]  # mutable cache, equal by content

    def __repr__(self) -> str:
        return f"StoredJSON({self.text[:60]!r})"


class _NotRead(StoredJSON):
    """A document the read left out because the answer asks nothing of it: using it is a bug."""

    __slots__ = ()

    @property
    def value(self) -> Any:
        raise RuntimeError("a stored document was used that its read left out")

    @property
    def text(self) -> str:
        raise RuntimeError("a stored document was used that its read left out")

    def parsed(self) -> Any:
        raise RuntimeError("a stored document was used that its read left out")


NOT_READ: StoredJSON = _NotRead()
"""The message of a record read without its documents (``db.conversations.reads.message_columns``)."""
