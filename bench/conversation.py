"""The Strands messages the benchmark writes and reads.

``APPEND_MESSAGE`` is one assistant turn of about 1 KB (text, usage and metrics, as Strands stores
it). ``TEMPLATES`` is a support conversation of eight messages (questions, tool calls, a failed tool
result, reasoning) that the restore, dashboard and bulk-loaded data repeat. Templates carry
placeholders so that replicated rows still differ where real ones would: the order number, the
tool use ids and the tracking id. ``render`` fills them in Python; ``bench.bulk_load`` fills the
same placeholders in SQL.
"""

import json
import uuid
from typing import Any

ORDER = "__ORDER__"
"""The order the conversation is about: the same in all eight messages of one round of it."""
MESSAGE_ID = "__MID__"
"""The message's own id (tool use ids of the calls it makes)."""
PREVIOUS_ID = "__PREV__"
"""The id of the message before it (tool use ids of the results it carries)."""
TRACKING_ID = "__TRACKING__"

_USAGE = {"inputTokens": 812, "outputTokens": 96, "totalTokens": 908, "cacheReadInputTokens": 512}

APPEND_MESSAGE: dict[str, Any] = {
    "role": "assistant",
    "content": [
        {
            "text": (
                "I checked the order history and found two captured payments for the same basket. "
                "The duplicate charge has been refunded to the original card; banks usually show it "
                "within three to five business days. The parcel left the warehouse yesterday by express "
                "delivery and the tracking link is in your account under Orders. If anything else "
                "looks wrong, reply here and I will pick it up from this conversation. "
            )
            * 2
        }
    ],
    "tracking_id": "6f1d2c3e-8a4b-4c5d-9e6f-7a8b9c0d1e2f",
    "metadata": {"usage": _USAGE, "metrics": {"latencyMs": 1234, "timeToFirstByteMs": 321}},
}


def _assistant(content: list[dict[str, Any]], latency_ms: int, output_tokens: int) -> dict[str, Any]:
    usage = {**_USAGE, "outputTokens": output_tokens, "totalTokens": 812 + output_tokens}
    return {
        "role": "assistant",
        "content": content,
        "tracking_id": TRACKING_ID,
        "metadata": {"usage": usage, "metrics": {"latencyMs": latency_ms, "timeToFirstByteMs": 240}},
    }


def _user(content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"role": "user", "content": content, "tracking_id": TRACKING_ID}


TEMPLATES: list[dict[str, Any]] = [
    _user(
        [
            {
                "text": (
                    f"Hi, I was charged twice for order {ORDER}. "
                    "Can I get a refund for the duplicate payment?"
                )
            }
        ]
    ),
    _assistant(
        [
            {"text": f"Let me look up order {ORDER} first."},
            {
                "toolUse": {
                    "toolUseId": f"tooluse-{MESSAGE_ID}",
                    "name": "lookup_order",
                    "input": {"order": ORDER},
                }
            },
        ],
        latency_ms=930,
        output_tokens=64,
    ),
    _user(
        [
            {
                "toolResult": {
                    "toolUseId": f"tooluse-{PREVIOUS_ID}",
                    "status": "success",
                    "content": [
                        {"text": f"Order {ORDER}: two captured payments of 49.90 EUR, express delivery."}
                    ],
                }
            }
        ]
    ),
    _assistant(
        [
            {
                "text": (
                    f"I can see two payments for order {ORDER}. I have started a refund of the duplicate "
                    "charge; it reaches your card in three to five business days."
                )
            }
        ],
        latency_ms=1450,
        output_tokens=120,
    ),
    _user([{"text": "Thanks. The delivery was also two days late, is there any compensation for that?"}]),
    _assistant(
        [
            {
                "reasoningContent": {
                    "reasoningText": {
                        "text": "Late delivery: the policy allows a 10 EUR voucher.",
                        "signature": "c2lnbmF0dXJl",
                    }
                }
            },
            {
                "toolUse": {
                    "toolUseId": f"tooluse-{MESSAGE_ID}",
                    "name": "issue_voucher",
                    "input": {"order": ORDER, "amount": 10, "currency": "EUR"},
                }
            },
        ],
        latency_ms=2210,
        output_tokens=88,
    ),
    _user(
        [
            {
                "toolResult": {
                    "toolUseId": f"tooluse-{PREVIOUS_ID}",
                    "status": "error",
                    "content": [{"text": "Voucher service unavailable: timeout after 30 s."}],
                }
            }
        ]
    ),
    _assistant(
        [
            {
                "text": (
                    "Sorry, the voucher system is down right now. I have noted a 10 EUR voucher for the "
                    "late delivery and you will receive it by email today."
                )
            }
        ],
        latency_ms=1710,
        output_tokens=102,
    ),
]


def order_number(agent_number: int, message_id: int) -> int:
    """The order a round of the conversation is about; ``bench.bulk_load`` computes the same in SQL."""
    return 100_000 + (agent_number * 7_919 + message_id // len(TEMPLATES)) % 900_000


def render(agent_number: int, message_id: int) -> dict[str, Any]:
    """Message ``message_id`` of the conversation of the ``agent_number``-th agent."""
    text = json.dumps(TEMPLATES[message_id % len(TEMPLATES)])
    for placeholder, value in (
        (ORDER, str(order_number(agent_number, message_id))),
        (MESSAGE_ID, str(message_id)),
        (PREVIOUS_ID, str(message_id - 1)),
        (TRACKING_ID, str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench/{agent_number}/{message_id}"))),
    ):
        text = text.replace(placeholder, value)
    message: dict[str, Any] = json.loads(text)
    return message
