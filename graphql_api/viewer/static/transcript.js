// A session: each agent's transcript (turns, tool calls with their results folded beneath them,
// tokens and latency), its Graphs' and Swarms' states, its agents' checkpoints; new messages live.

import { query } from "./api.js";
import { el, number, replace, time } from "./dom.js";
import { sessionUrl } from "./links.js";
import { multiAgent } from "./multiagents.js";
import { MESSAGE_FIELDS, Transcript } from "./turns.js";

const SESSION = `query ViewerSession($sessionId: String!) {
  session(sessionId: $sessionId) {
    sessionId title labels snapshotBacked createdAt lastActivityAt messageCount
    totals { totalTokens toolCalls toolErrors }
    multiAgents { multiAgentId state updatedAt }
    agents { agentId snapshotBacked messageCount checkpoints { snapshotId createdAt messageCount } }
  }
}`;

const AS_OF = `query ViewerCheckpoint($sessionId: String!, $agentId: String!, $snapshotId: String!) {
  agent(sessionId: $sessionId, agentId: $agentId) {
    snapshot(snapshotId: $snapshotId) {
      checkpoint { snapshotId createdAt messageCount }
      messages { ${MESSAGE_FIELDS} }
    }
  }
}`;

const AGENTS = `query ViewerAgents($sessionId: String!) {
  session(sessionId: $sessionId) { agents { agentId snapshotBacked messageCount checkpoints { snapshotId createdAt messageCount } } }
}`;

export const MESSAGE_ADDED = `subscription ViewerMessageAdded($sessionId: String!, $agentId: String!, $afterMessageId: Int) {
  messageAdded(sessionId: $sessionId, agentId: $agentId, afterMessageId: $afterMessageId) { ${MESSAGE_FIELDS} }
}`;

export const MESSAGE_UPDATED = `subscription ViewerMessageUpdated($sessionId: String!, $agentId: String!) {
  messageUpdated(sessionId: $sessionId, agentId: $agentId) { ${MESSAGE_FIELDS} }
}`;

export const AGENT_UPDATED = `subscription ViewerAgentUpdated($sessionId: String!) {
  agentUpdated(sessionId: $sessionId) { agentId }
}`;

function checkpoints(sessionId, agent) {
  if (!agent.checkpoints.length) return null;
  return el(
    "details",
    { class: "checkpoints" },
    el("summary", {}, `Checkpoints (${agent.checkpoints.length})`),
    el(
      "ol",
      {},
      agent.checkpoints.map((checkpoint) =>
        el(
          "li",
          {},
          time(checkpoint.createdAt),
          ` · ${number(checkpoint.messageCount)} messages · `,
          el(
            "a",
            { href: sessionUrl(sessionId, { agent: agent.agentId, asOf: checkpoint.snapshotId }), "data-nav": true },
            "view as of",
          ),
        ),
      ),
    ),
  );
}

function sessionHeader(session) {
  document.title = `${session.title || session.sessionId} · Conversations`;
  const labels = Object.entries(session.labels ?? {}).map(([name, value]) => el("li", {}, `${name}=${value}`));
  return el(
    "header",
    { class: "session-header" },
    el("p", {}, el("a", { href: "./", "data-nav": true }, "← All conversations")),
    el("h1", {}, session.title || session.sessionId),
    el(
      "p",
      { class: "muted" },
      session.title ? `${session.sessionId} · ` : "",
      `${number(session.messageCount)} messages · ${number(session.totals.totalTokens)} tokens · ${number(session.totals.toolCalls)} tool calls`,
      session.totals.toolErrors ? ` (${number(session.totals.toolErrors)} failed)` : "",
      " · last activity ",
      time(session.lastActivityAt),
    ),
    labels.length ? el("ul", { class: "labels" }, labels) : null,
  );
}

async function showCheckpoint(main, session, agentId, snapshotId) {
  const data = await query(AS_OF, { sessionId: session.sessionId, agentId, snapshotId });
  const snapshot = data.agent?.snapshot;
  const back = el("a", { href: sessionUrl(session.sessionId), "data-nav": true }, "back to the live conversation");
  if (!snapshot) {
    replace(main, sessionHeader(session), el("p", { role: "alert" }, `No checkpoint ${snapshotId} of ${agentId}: `, back));
    return;
  }
  const transcript = new Transcript(session.sessionId, agentId, { live: false });
  snapshot.messages.forEach((message) => transcript.add(message));
  replace(
    main,
    sessionHeader(session),
    el(
      "p",
      { class: "as-of", role: "note" },
      `${agentId} as of checkpoint ${snapshot.checkpoint.snapshotId}, `,
      time(snapshot.checkpoint.createdAt),
      ` (${number(snapshot.checkpoint.messageCount)} messages) — `,
      back,
    ),
    el("section", { class: "agent" }, el("h2", {}, agentId), transcript.list),
  );
}

function focusFragment() {
  const id = location.hash.slice(1);
  document.querySelectorAll(".targeted").forEach((node) => node.classList.remove("targeted"));
  // Anchors hold the agent id percent-encoded, as the browser keeps a fragment.
  const target = id && (document.getElementById(id) ?? document.getElementById(encodeURI(decodeURIComponent(id))));
  if (target) {
    target.classList.add("targeted");
    target.scrollIntoView({ block: "center" });
    target.focus({ preventScroll: true });
  }
}

/** Renders a session into ``main`` and keeps it live until the page leaves it. */
export async function showSession(main, params, { live }) {
  const sessionId = params.get("session");
  const data = await query(SESSION, { sessionId });
  const session = data.session;
  if (!session) {
    replace(
      main,
      el("p", {}, el("a", { href: "./", "data-nav": true }, "← All conversations")),
      el("p", { role: "alert" }, `No session ${sessionId}.`),
    );
    return null;
  }
  if (params.get("asOf") && params.get("agent")) {
    await showCheckpoint(main, session, params.get("agent"), params.get("asOf"));
    return null;
  }
  const agents = el("div", { class: "agents" });
  const contents = el("nav", { class: "agent-index", "aria-label": "Agents" }, el("ul", {}));
  const transcripts = new Map();
  const noAgent = el("p", { class: "muted" }, "No agent yet.");

  async function addAgent(agent) {
    if (transcripts.has(agent.agentId)) return;
    const transcript = new Transcript(sessionId, agent.agentId);
    transcripts.set(agent.agentId, transcript);
    const id = `agent:${encodeURIComponent(agent.agentId)}`;
    contents.firstChild.append(el("li", {}, el("a", { href: `#${id}` }, agent.agentId)));
    contents.hidden = transcripts.size < 2;
    noAgent.remove();
    agents.append(
      el(
        "section",
        { class: "agent", id, "aria-label": `Agent ${agent.agentId}` },
        el("h2", {}, agent.agentId, agent.snapshotBacked ? el("span", { class: "badge" }, "snapshots") : null),
        checkpoints(sessionId, agent),
        transcript.list,
      ),
    );
    await transcript.catchUp();
    live(
      MESSAGE_ADDED,
      () => ({ sessionId, agentId: agent.agentId, afterMessageId: transcript.lastId ?? -1 }),
      (event) => transcript.add(event.messageAdded),
      () => transcript.catchUp(),
    );
    // Polling shows new messages only: a redaction made while polling shows at the next reload.
    live(
      MESSAGE_UPDATED,
      () => ({ sessionId, agentId: agent.agentId }),
      (event) => transcript.update(event.messageUpdated),
      async () => {},
      60_000,
    );
  }

  replace(
    main,
    sessionHeader(session),
    contents,
    session.multiAgents.length
      ? el("section", { class: "multi-agents" }, el("h2", {}, "Graphs and swarms"), session.multiAgents.map(multiAgent))
      : null,
    agents,
  );
  for (const agent of session.agents) await addAgent(agent);
  if (!session.agents.length) agents.append(noAgent);
  const newAgents = async () => {
    const found = await query(AGENTS, { sessionId });
    for (const agent of found.session?.agents ?? []) await addAgent(agent);
  };
  // An agent's state is written on every turn: only one not shown yet costs a query.
  const agentUpdated = (event) => (transcripts.has(event.agentUpdated.agentId) ? null : newAgents());
  live(AGENT_UPDATED, () => ({ sessionId }), agentUpdated, newAgents);
  focusFragment();
  return focusFragment;
}
