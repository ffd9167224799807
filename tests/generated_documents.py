"""Documents generated from schema.graphql (hypothesis-graphql), shared by the fuzz test and the fast
paths' differential test: strategies for the custom scalars, and a visitor that points generated ids
at rows that exist."""

import base64
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import graphql
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes

SCHEMA = (Path(__file__).resolve().parent.parent / "schema.graphql").read_text(encoding="utf-8")

GRAPHQL_NAMES = st.from_regex(r"[_A-Za-z][_0-9A-Za-z]{0,7}", fullmatch=True)


def _object_node(fields: list[tuple[str, graphql.ValueNode]]) -> graphql.ObjectValueNode:
    return nodes.Object(
        [graphql.ObjectFieldNode(name=graphql.NameNode(value=name), value=value) for name, value in fields]
    )


def _strands_message(role: str, text: str) -> graphql.ValueNode:
    block = _object_node([("text", nodes.String(text))])
    return _object_node([("role", nodes.String(role)), ("content", nodes.List([block]))])


JSON_LEAVES = st.one_of(
    st.just(nodes.Null),
    st.booleans().map(nodes.Boolean),
    st.integers().map(nodes.Int),
    st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
    st.text(max_size=20).map(nodes.String),
)
JSON_VALUES = st.one_of(
    st.builds(_strands_message, st.sampled_from(["user", "assistant", ""]), st.text(max_size=30)),
    st.recursive(
        JSON_LEAVES,
        lambda children: st.one_of(
            st.lists(children, max_size=4).map(nodes.List),
            st.lists(st.tuples(GRAPHQL_NAMES, children), max_size=4).map(_object_node),
        ),
        max_leaves=12,
    ),
)

OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda minutes: timezone(timedelta(minutes=minutes)))
AWKWARD_TIMES = (
    "9998-12-31T23:59:59.999999+00:00",
    "9999-12-31T23:59:59.999999+00:00",
    "0001-01-01T00:00:00+00:00",
    "1900-01-01T00:00:00+00:00",
    "1899-12-31T23:59:59.999999+00:00",
    "2026-13-01T00:00:00+00:00",
    "2026-02-30T00:00:00Z",
    "2026-01-01T00:00:00+24:00",
    "2026-01-01T00:00:00\x00+00:00",
    "2026-01-01",
    "",
)
STORABLE_TIMES = st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(9998, 12, 30), timezones=OFFSETS
).map(lambda moment: nodes.String(moment.isoformat()))
REFUSED_TIMES = st.one_of(
    st.datetimes(timezones=OFFSETS).map(lambda moment: nodes.String(moment.isoformat())),
    st.datetimes().map(lambda moment: nodes.String(moment.isoformat())),
    st.sampled_from(AWKWARD_TIMES).map(nodes.String),
    st.text(max_size=40).map(nodes.String),
    st.integers().map(nodes.Int),
)
# Mostly storable instants: one refused value fails its whole document before any resolver runs.
DATETIME_VALUES = st.integers(0, 9).flatmap(
    lambda choice: REFUSED_TIMES if choice % 5 == 0 else STORABLE_TIMES
)
# Storage objects' bytes: mostly valid base64, now and then text that is not.
BASE64_VALUES = st.one_of(
    st.binary(max_size=64).map(lambda data: nodes.String(base64.b64encode(data).decode())),
    st.text(max_size=20).map(nodes.String),
)
CUSTOM_SCALARS = {"JSON": JSON_VALUES, "DateTime": DATETIME_VALUES, "Base64": BASE64_VALUES}


class SteerIds(graphql.Visitor):
    """Points some generated ids at rows that exist, so updates, deletes and nested fields find data:
    string arguments (and input fields) named in ``strings`` to one of its values, ``messageId`` to
    one of ``message_ids``.

    Hypothesis draws each choice, so a failing document still shrinks.
    """

    def __init__(
        self, data: st.DataObject, strings: Mapping[str, Sequence[str]], message_ids: Sequence[int]
    ) -> None:
        super().__init__()
        self.data = data
        self.strings = strings
        self.message_ids = message_ids

    def _steer(self, name: str, value: graphql.ValueNode) -> graphql.ValueNode | None:
        if name in self.strings and isinstance(value, graphql.StringValueNode):
            chosen = self.data.draw(st.sampled_from((None, *self.strings[name] * 3)))
            return None if chosen is None else nodes.String(chosen)
        if name == "messageId" and isinstance(value, graphql.IntValueNode):
            number = self.data.draw(st.sampled_from((None, *self.message_ids)))
            return None if number is None else nodes.Int(number)
        return None

    def enter_argument(self, node: graphql.ArgumentNode, *_: Any) -> graphql.ArgumentNode | None:
        value = self._steer(node.name.value, node.value)
        return None if value is None else graphql.ArgumentNode(name=node.name, value=value)

    def enter_object_field(self, node: graphql.ObjectFieldNode, *_: Any) -> graphql.ObjectFieldNode | None:
        value = self._steer(node.name.value, node.value)
        return None if value is None else graphql.ObjectFieldNode(name=node.name, value=value)


def documents(
    mode: Mode,
    *,
    fields: Sequence[str] | None = None,
    custom_scalars: Mapping[str, st.SearchStrategy[graphql.ValueNode]] = CUSTOM_SCALARS,
) -> st.SearchStrategy[graphql.DocumentNode]:
    """Generated documents (queries and mutations, or only the root ``fields`` named) as syntax trees,
    to be printed once their ids are steered."""
    generated = from_schema(
        SCHEMA,
        fields=fields,
        custom_scalars=dict(custom_scalars),
        print_ast=lambda document: document,
        mode=mode,
    )
    return cast(st.SearchStrategy[graphql.DocumentNode], generated)


def sending_settings(examples: int) -> settings:
    """Hypothesis settings for a test that sends up to ``examples`` generated documents to a server:
    the same documents every run (derandomized, no example database), no per-example deadline (a
    server answers in its own time), and shrinking a failure found."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
