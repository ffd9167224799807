"""``schema.graphql`` is the schema the code serves, so clients can be checked against the file."""

import difflib
from pathlib import Path

from graphql_api.schema import schema_sdl

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_schema_file_is_the_sdl_the_code_exports() -> None:
    exported = schema_sdl()
    stored = SCHEMA_FILE.read_text(encoding="utf-8")

    if stored != exported:
        diff = "".join(
            difflib.unified_diff(
                stored.splitlines(keepends=True),
                exported.splitlines(keepends=True),
                "schema.graphql",
                "schema_sdl()",
            )
        )
        raise AssertionError(
            "schema.graphql differs from the code's schema; regenerate it with "
            f"`session-graphql export-schema` and commit it.\n{diff}"
        )
