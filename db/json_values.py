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
