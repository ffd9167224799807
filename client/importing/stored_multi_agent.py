"""A Graph's or Swarm's saved state in the shape ``create_multi_agent`` takes."""

from typing import Any

from strands.multiagent.base import MultiAgentBase, MultiAgentResult
from strands.types.multiagent import MultiAgentInput


class SavedMultiAgentState(MultiAgentBase):
    """The state a Graph or Swarm saved, exactly as read, standing in for the orchestrator itself.

    The repositories store ``serialize_state()`` of the multi-agent they are given; the importer
    has only the saved state, not the Graph or Swarm (nor its agents and tools) that wrote it.
    """

    def __init__(self, multi_agent_id: str, state: dict[str, Any]) -> None:
        super().__init__()
        self.id = multi_agent_id
        self._state = state

    def serialize_state(self) -> dict[str, Any]:
        return self._state

    async def invoke_async(
        self, task: MultiAgentInput, invocation_state: dict[str, Any] | None = None, **kwargs: Any
    ) -> MultiAgentResult:
        raise NotImplementedError("a saved multi-agent state is imported, never run")
