"""Importing ``FileSessionManager`` sessions through ``GraphQLSessionRepository``.

Nothing is stored twice and nothing stored is changed: a session, agent or multi-agent the server
holds already is compared with its file. Equal, it counts as already present; different, it is
reported and skipped. Messages go through ``client.importing.messages``.
"""

from collections.abc import Sequence

from strands.types.session import Session, SessionAgent, SessionMessage

from client.errors import GraphQLSessionError, SessionAlreadyExistsError
from client.importing.file_sessions import (
    AGENT_FILE,
    MULTI_AGENT_FILE,
    SESSION_FILE,
    AgentFiles,
    SessionFiles,
    unreadable,
)
from client.importing.messages import MessageImport, compare_moved_agent
from client.importing.report import Kind
from client.importing.run import ImportRun, refusal
from client.importing.sameness import canonical, same_session, same_states
from client.importing.stored_multi_agent import SavedMultiAgentState


def import_sessions(run: ImportRun, sessions: Sequence[SessionFiles]) -> None:
    for files in sessions:
        import_session(run, files)
        run.progress.session_done()


def import_session(run: ImportRun, files: SessionFiles) -> None:
    held = {
        "sessions": 1,
        "agents": len(files.agents),
        "messages": files.message_count,
        "multi_agents": len(files.multi_agent_ids),
    }
    local = _read_session(run, files, held)
    if local is None:
        run.progress.advance(files.message_count)
        return
    try:
        stored = _stored_or_created_session(run, local)
    except (GraphQLSessionError, ValueError) as error:
        run.report.skip(run.where(files.path), refusal(error), **held)
        run.progress.advance(files.message_count)
        return
    if stored is None:
        run.report.add_imported(Kind.SESSION)
    elif same_session(stored, local):
        run.report.add_present(Kind.SESSION)
    else:
        reason = (
            f"conflict: the server holds another session with this id (created {stored.created_at}, "
            f"this one {local.created_at}); nothing of it imported"
        )
        run.report.skip(run.where(files.path), reason, **held)
        run.progress.advance(files.message_count)
        return
    for agent in files.agents:
        import_agent(run, files, agent, session_is_new=stored is None)
    for multi_agent_id in files.multi_agent_ids:
        import_multi_agent(run, files, multi_agent_id, session_is_new=stored is None)
    for stray in files.strays:
        run.report.skip(run.where(stray.path), stray.reason)


def _read_session(run: ImportRun, files: SessionFiles, held: dict[str, int]) -> Session | None:
    path = files.path / SESSION_FILE
    if not path.is_file():
        run.report.skip(run.where(files.path), f"unknown layout: no {SESSION_FILE}", **held)
        return None
    try:
        local = run.store.read_session(files.session_id)
    except Exception as error:
        run.report.skip(run.where(path), unreadable(error) + "; nothing of this session imported", **held)
        return None
    if local is None or local.session_id != files.session_id:
        held_id = None if local is None else local.session_id
        reason = f"unknown layout: it names session {held_id!r}, its directory {files.session_id!r}"
        run.report.skip(run.where(path), reason, **held)
        return None
    return local


def _stored_or_created_session(run: ImportRun, local: Session) -> Session | None:
    """The stored session, or None after creating it (or finding it missing in a dry run)."""
    stored: Session | None = run.call(run.repository.read_session, local.session_id)
    if stored is not None or run.dry_run:
        return stored
    try:
        run.call(run.repository.create_session, local)
    except SessionAlreadyExistsError:
        # Made between the look and the create, by another import or an agent.
        return run.call(run.repository.read_session, local.session_id)
    return None


def import_agent(run: ImportRun, files: SessionFiles, agent: AgentFiles, session_is_new: bool) -> None:
    count = len(agent.message_ids)
    local = _read_agent(run, files, agent)
    if local is None:
        run.progress.advance(count)
        return
    sid, aid = files.session_id, agent.agent_id
    stored_messages: dict[int, SessionMessage] = {}
    try:
        stored = None if session_is_new else run.call(run.repository.read_agent, sid, aid)
        if stored is None and not run.dry_run:
            try:
                run.call(run.repository.create_agent, sid, local)
            except SessionAlreadyExistsError:
                stored = run.call(run.repository.read_agent, sid, aid)
        if stored is not None:
            listed = run.call(run.repository.list_messages, sid, aid)
            stored_messages = {message.message_id: message for message in listed}
    except (GraphQLSessionError, ValueError) as error:
        run.report.skip(run.where(agent.path), refusal(error), agents=1, messages=count)
        run.progress.advance(count)
        return
    if stored is None:
        run.report.add_imported(Kind.AGENT)
    elif same_states(stored, local):
        run.report.add_present(Kind.AGENT)
    else:
        compare_moved_agent(run, sid, agent, stored_messages)
        return
    MessageImport(run, sid, agent, stored_messages).import_all()


def _read_agent(run: ImportRun, files: SessionFiles, agent: AgentFiles) -> SessionAgent | None:
    path = agent.path / AGENT_FILE
    held = {"agents": 1, "messages": len(agent.message_ids)}
    if not path.is_file():
        run.report.skip(run.where(agent.path), f"unknown layout: no {AGENT_FILE}", **held)
        return None
    try:
        local = run.store.read_agent(files.session_id, agent.agent_id)
    except Exception as error:
        run.report.skip(run.where(path), unreadable(error) + "; nothing of this agent imported", **held)
        return None
    if local is None or local.agent_id != agent.agent_id:
        held_id = None if local is None else local.agent_id
        reason = f"unknown layout: it names agent {held_id!r}, its directory {agent.agent_id!r}"
        run.report.skip(run.where(path), reason, **held)
        return None
    return local


def import_multi_agent(
    run: ImportRun, files: SessionFiles, multi_agent_id: str, session_is_new: bool
) -> None:
    directory = files.path / "multi_agents" / f"multi_agent_{multi_agent_id}"
    path = directory / MULTI_AGENT_FILE
    if not path.is_file():
        run.report.skip(run.where(directory), f"unknown layout: no {MULTI_AGENT_FILE}", multi_agents=1)
        return
    try:
        state = run.store.read_multi_agent(files.session_id, multi_agent_id)
    except Exception as error:
        run.report.skip(run.where(path), unreadable(error), multi_agents=1)
        return
    if not isinstance(state, dict):
        run.report.skip(run.where(path), "not a Strands record (not a JSON object)", multi_agents=1)
        return
    sid = files.session_id
    try:
        stored = None if session_is_new else run.call(run.repository.read_multi_agent, sid, multi_agent_id)
        if stored is None and not run.dry_run:
            try:
                run.call(run.repository.create_multi_agent, sid, SavedMultiAgentState(multi_agent_id, state))
            except SessionAlreadyExistsError:
                stored = run.call(run.repository.read_multi_agent, sid, multi_agent_id)
    except (GraphQLSessionError, ValueError) as error:
        run.report.skip(run.where(directory), refusal(error), multi_agents=1)
        return
    if stored is None:
        run.report.add_imported(Kind.MULTI_AGENT)
    elif canonical(stored) == canonical(state):
        run.report.add_present(Kind.MULTI_AGENT)
    else:
        reason = "conflict: the server holds this multi-agent with another state; nothing overwritten"
        run.report.skip(run.where(directory), reason, multi_agents=1)
