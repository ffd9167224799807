"""Runs Strands agents against a session store server, as a user's program would; tests start it
as a separate process to show that a conversation outlives the process that had it.

    python -m tests.client_agent_script agent URL SESSION_ID AGENT_ID PROMPT [PROMPT ...]
    python -m tests.client_agent_script swarm URL SESSION_ID [--writer-crashes]
    python -m tests.client_agent_script traced-agent URL SESSION_ID AGENT_ID PROMPT [PROMPT ...]

``traced-agent`` sets up OpenTelemetry as Strands documents it (``StrandsTelemetry``, spans sent to
``OTEL_EXPORTER_OTLP_ENDPOINT``) and runs the agent inside a span of its own; its output names the
trace.

Prints one JSON object on stdout. With ``--writer-crashes`` the swarm's second agent kills the
process in the middle of its turn, the way a deploy or an out-of-memory kill would.
"""

import argparse
import json
import os
from typing import Any

from opentelemetry import trace
from strands import Agent, tool
from strands.multiagent import Swarm
from strands.session import RepositorySessionManager
from strands.telemetry import StrandsTelemetry
from strands.types.content import Messages
from strands.types.tools import ToolContext

from client import GraphQLSessionRepository
from tests.fake_model import FakeModel, Reply, scripted, text, tool_call

CRASH_EXIT_CODE = 17
SWARM_ID = "report-team"


@tool(context=True)
def remember(key: str, value: str, tool_context: ToolContext) -> str:
    """Remember a fact about the user for later turns.

    Args:
        key: What the fact is about.
        value: The fact.
    """
    tool_context.agent.state.set(key, value)
    return f"remembered {key}={value}"


def new_agent(url: str, session_id: str, agent_id: str, **agent_args: Any) -> Agent:
    """An agent that keeps its session in the store at ``url``, as the README shows."""
    repository = GraphQLSessionRepository(url)
    session_manager = RepositorySessionManager(session_id=session_id, session_repository=repository)
    agent_args.setdefault("model", FakeModel())
    return Agent(
        agent_id=agent_id,
        tools=[remember],
        session_manager=session_manager,
        callback_handler=None,
        **agent_args,
    )


def crash(messages: Messages) -> Reply:
    os._exit(CRASH_EXIT_CODE)


def new_swarm(url: str, session_id: str, writer_crashes: bool = False) -> Swarm:
    """A researcher who hands the task to a writer; both persist through one session manager."""
    handoff = {"agent_name": "writer", "message": "write it up"}
    researcher = Agent(
        name="researcher",
        model=FakeModel(scripted(tool_call("handoff_to_agent", handoff, "handoff-1"), text("handed off"))),
        callback_handler=None,
    )
    writer = Agent(
        name="writer",
        model=FakeModel(crash if writer_crashes else scripted(text("the report"))),
        callback_handler=None,
    )
    repository = GraphQLSessionRepository(url)
    session_manager = RepositorySessionManager(session_id=session_id, session_repository=repository)
    return Swarm([researcher, writer], session_manager=session_manager, id=SWARM_ID)


def model_calls(agent: Agent) -> int:
    model = agent.model
    assert isinstance(model, FakeModel)
    return model.calls


def run_agent(url: str, session_id: str, agent_id: str, prompts: list[str]) -> dict[str, Any]:
    agent = new_agent(url, session_id, agent_id)
    restored = len(agent.messages)
    replies = [str(agent(prompt)).strip() for prompt in prompts]
    return {"restored_messages": restored, "replies": replies, "state": agent.state.get()}


def run_swarm(url: str, session_id: str, writer_crashes: bool) -> dict[str, Any]:
    swarm = new_swarm(url, session_id, writer_crashes)
    result = swarm("write a report")
    return {
        "status": result.status.value,
        "node_history": [node.node_id for node in result.node_history],
        "results": {node_id: str(node.result).strip() for node_id, node in result.results.items()},
        "model_calls": {node_id: model_calls(node.executor) for node_id, node in swarm.nodes.items()},
    }


def run_traced_agent(url: str, session_id: str, agent_id: str, prompts: list[str]) -> dict[str, Any]:
    telemetry = StrandsTelemetry().setup_otlp_exporter()
    with trace.get_tracer(__name__).start_as_current_span("support conversation") as span:
        output = run_agent(url, session_id, agent_id, prompts)
    telemetry.tracer_provider.force_flush()
    return {**output, "trace_id": format(span.get_span_context().trace_id, "032x")}


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("agent", "traced-agent"):
        agent = commands.add_parser(name)
        agent.add_argument("url")
        agent.add_argument("session_id")
        agent.add_argument("agent_id")
        agent.add_argument("prompts", nargs="+")
    swarm = commands.add_parser("swarm")
    swarm.add_argument("url")
    swarm.add_argument("session_id")
    swarm.add_argument("--writer-crashes", action="store_true")
    args = parser.parse_args()
    if args.command == "agent":
        output = run_agent(args.url, args.session_id, args.agent_id, args.prompts)
    elif args.command == "traced-agent":
        output = run_traced_agent(args.url, args.session_id, args.agent_id, args.prompts)
    else:
        output = run_swarm(args.url, args.session_id, args.writer_crashes)
    print(json.dumps(output))


if __name__ == "__main__":
    main()
