"""The client's field-by-field message mapping agrees with Strands' ``to_dict`` and ``from_dict``."""

import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from strands.types.session import SessionMessage

from client import mapping

scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=8)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)
messages = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant"]), "content": st.lists(values, max_size=4)}
)


def strands_input(message: SessionMessage) -> dict[str, Any]:
    stored = message.to_dict()
    return {
        "messageId": stored["message_id"],
        "message": stored["message"],
        "redactMessage": stored["redact_message"],
        "createdAt": stored["created_at"],
        "updatedAt": stored["updated_at"],
    }


@settings(max_examples=300, deadline=None)
@given(message=messages, redacted=st.none() | messages, message_id=st.integers(0, 2**31 - 1))
def test_messages_map_as_strands_maps_them_and_are_left_untouched(
    message: dict[str, Any], redacted: dict[str, Any] | None, message_id: int
) -> None:
    original = SessionMessage(
        message, message_id, redacted, "2026-12-01T10:00:00+00:00", "2026-12-01T10:00:01+00:00"
    )  # type: ignore[arg-type]
    before = copy.deepcopy(original)

    sent = mapping.message_input(original)
    assert sent == strands_input(original)
    assert original == before

    answer = json.loads(json.dumps(sent))
    expected = SessionMessage.from_dict(
        {
            "message_id": answer["messageId"],
            "message": answer["message"],
            "redact_message": answer["redactMessage"],
            "created_at": answer["createdAt"],
            "updated_at": answer["updatedAt"],
        }
    )
    assert mapping.message_from_result(json.loads(json.dumps(sent))) == expected == before


def test_bytes_deep_inside_a_message_are_enveloped_in_a_copy() -> None:
    image = {"image": {"format": "png", "source": {"bytes": b"\x89PNG"}}}
    message = {"role": "user", "content": [{"text": "look"}, image]}
    sent = mapping.message_input(SessionMessage(message, 0))  # type: ignore[arg-type]

    assert sent["message"]["content"][1]["image"]["source"]["bytes"] == {
        "__bytes_encoded__": True,
        "data": "iVBORw==",
    }
    assert sent["message"]["content"][0] is message["content"][0]
    assert message["content"][1] is image and image["image"]["source"]["bytes"] == b"\x89PNG"
