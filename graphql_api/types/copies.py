"""GraphQL types made from ``db.records`` rows: the fields a type and its record share by name are
copied, and only the others are said where the type is made."""

import dataclasses
from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar

T = TypeVar("T")

_SHARED: dict[tuple[type[Any], type[Any]], tuple[tuple[str, ...], Callable[[Any], Any]]] = {}


def copied(cls: type[T], record: Any, **converted: Any) -> T:
    """An instance of the strawberry type ``cls`` holding what ``record`` holds under the same
    names, and ``converted`` for the fields whose values change on the way (the same ones at every
    call for one type: which names are copied is found once per type and record type)."""
    key = (cls, type(record))
    found = _SHARED.get(key)
    if found is None:
        names = tuple(
            field.name
            for field in dataclasses.fields(cls)  # type: ignore[arg-type]
            if field.init and field.name not in converted and hasattr(record, field.name)
        )
        found = _SHARED[key] = (names, attrgetter(*names))
    names, values = found
    picked = values(record)
    return cls(**dict(zip(names, picked if len(names) > 1 else (picked,), strict=True)), **converted)
