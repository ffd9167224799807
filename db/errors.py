"""What storage operations raise when the data, not the database, is the problem."""


class StoreError(Exception):
    """Base of the errors a caller is expected to handle and report."""


class NotFoundError(StoreError):
    """The thing, or the parent it must live under, does not exist."""


class AlreadyExistsError(StoreError):
    """A create named something that exists already."""


class ConflictError(StoreError):
    """The same id is stored with different content; nothing was overwritten."""


class InvalidDataError(StoreError):
    """PostgreSQL refused a value (for example text it cannot store)."""


class JsonTooDeepError(InvalidDataError):
    """A JSON document nests deeper than the store keeps (a snapshot, read into the session tables)."""


class TooManyBytesError(StoreError):
    """Rows read for an answer would hold more bytes than the answer may (``db.byte_caps``)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the rows would hold more than {size} bytes")
        self.size = size
