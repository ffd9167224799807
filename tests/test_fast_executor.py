"""FastExecutor (graphql_api.execution) keeps what it learns about a document for one request; what
it keeps must stay right while graphql-core frees and reuses objects under it.

The differential test (tests/test_fast_paths.py) compares its answers with the plain executor's;
this file holds the cases that need many repetitions of one shape to show a fault.
"""

from typing import Any

from tests.conftest import GraphQLCall

MESSAGES = 2000
LIST = """
query List($sessionId: String!) {
  agent(sessionId: $sessionId, agentId: "a") { messages { messageId role createdAt } }
}
"""
NESTED = """
query Nested($sessionId: String!) {
  session(sessionId: $sessionId) {
    sessionId
    agents { agentId messagesConnection(first: 3) { nodes { messageId role } } }
  }
}
"""


def _seed(graphql: GraphQLCall, session_id: str) -> None:
    answer = graphql(
        f'mutation {{ createSession(session: {{sessionId: "{session_id}"}}) {{ sessionId }} '
        f'createAgent(sessionId: "{session_id}", agent: {{agentId: "a", state: {{}}, '
        f"conversationManagerState: {{}}}}) {{ agentId }} }}"
    )
    assert "errors" not in answer, answer
    message: dict[str, Any] = {"role": "user", "content": [{"text": "hi"}]}
    for first in range(0, MESSAGES, 1000):
        batch = [{"messageId": n, "message": message} for n in range(first, first + 1000)]
        answer = graphql(
            "mutation($s: String!, $m: [MessageInput!]!) "
            '{ appendMessages(sessionId: $s, agentId: "a", messages: $m) { messageId } }',
            {"s": session_id, "m": batch},
        )
        assert "errors" not in answer, answer


def test_every_repetition_of_a_document_answers_in_full(graphql: GraphQLCall, new_id: Any) -> None:
    # The root's grouped field set is freed once its fields have started; a plan kept by its id
    # alone was once found again for an object below it, whose answer came back as {}.
    session_id = new_id("repeat")
    _seed(graphql, session_id)
    for _ in range(25):
        listed = graphql(LIST, {"sessionId": session_id})
        assert "errors" not in listed, listed
        assert [m["messageId"] for m in listed["data"]["agent"]["messages"]] == list(range(MESSAGES))
        nested = graphql(NESTED, {"sessionId": session_id})
        assert nested["data"]["session"]["agents"] == [
            {
                "agentId": "a",
                "messagesConnection": {"nodes": [{"messageId": n, "role": "user"} for n in range(3)]},
            }
        ]
