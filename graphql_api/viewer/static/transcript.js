// A session: each agent's transcript (turns, tool calls with their results folded beneath them,
// tokens and latency), its Graphs' and Swarms' states, its agents' checkpoints; new messages live.

import { query } from "./api.js";
import { block, resultContent } from "./content.js";
import { el, json, number, replace, time } from "./dom.js";
import { messageAnchor, messageUrl, sessionUrl } from "./links.js";

const MESSAGE_FIELDS = `messageId role effectiveMessage isRedacted createdAt latencyMs
  usage { inputTokens outputTokens totalTokens }`;

const SESSION = `query ViewerSession($sessionId: String!) {
  session(sessionId: $sessionId) {
    sessionId title labels snapshotBacked createdAt lastActivityAt messageCount
    totals { totalTokens toolCalls toolErrors }
    multiAgents { multiAgentId state updatedAt }
    agents { agentId snapshotBacked messageCount checkpoints { snapshotId createdAt messageCount } }
  }
}`;

const MESSAGES = `query ViewerMessages($sessionId: String!, $agentId: String!, $after: String) {
  agent(sessionId: $sessionId, agentId: $agentId) {
    messagesConnection(first: 200, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes { ${MESSAGE_FIELDS} }
    }
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

function statusBadge(status) {
  return el("span", { class: `status ${status}` }, status);
}

/** One agent's conversation, kept in messageId order as messages arrive. */
class Transcript {
  constructor(sessionId, agentId, { live = true } = {}) {
    this.sessionId = sessionId;
    this.agentId = agentId;
    this.live = live;
    this.lastId = null;
    this.cursor = null;
    this.tools = new Map();
    this.list = el("ol", { class: "turns", "aria-label": `Messages of ${agentId}` });
  }

  /** Adds a message after the last one; one already shown (a catch-up repeating it) is skipped. */
  add(message) {
    if (this.lastId !== null && message.messageId <= this.lastId) return;
    this.lastId = message.messageId;
    this.list.append(this.turn(message));
  }

  /** Shows a message again as it is now (a guardrail redacted it after it was shown). */
  update(message) {
    const shown = this.list.querySelector(`[data-message-id="${Number(message.messageId)}"]`);
    if (shown) shown.replaceWith(this.turn(message));
  }

  turn(message) {
    const content = message.effectiveMessage?.content ?? [];
    const onlyResults = content.length > 0 && content.every((item) => "toolResult" in item);
    const anchor = messageAnchor(this.agentId, message.messageId);
    const link = this.live
      ? el("a", { class: "permalink", href: messageUrl(this.sessionId, this.agentId, message.messageId) }, `#${message.messageId}`)
      : el("span", { class: "permalink" }, `#${message.messageId}`);
    const facts = [];
    if (message.usage) {
      facts.push(
        el(
          "span",
          { class: "usage", title: `${message.usage.inputTokens} in, ${message.usage.outputTokens} out` },
          `${number(message.usage.totalTokens)} tokens (${number(message.usage.inputTokens)} in, ${number(message.usage.outputTokens)} out)`,
        ),
      );
    }
    if (message.latencyMs !== null && message.latencyMs !== undefined) {
      facts.push(el("span", { class: "latency" }, `${number(message.latencyMs)} ms`));
    }
    const header = el(
      "header",
      {},
      el("span", { class: "role" }, onlyResults ? "Tool result" : message.role),
      link,
      time(message.createdAt),
      facts,
      message.isRedacted ? el("span", { class: "badge redacted" }, "redacted") : null,
    );
    const body = content.map((item) => this.block(item, message.messageId)).filter(Boolean);
    return el(
      "li",
      {
        class: `turn ${onlyResults ? "results" : message.role}${message.isRedacted ? " is-redacted" : ""}`,
        id: anchor,
        tabindex: "-1",
        "data-message-id": message.messageId,
      },
      header,
      message.isRedacted ? el("p", { class: "muted small" }, "A guardrail redacted this message; this is what the agent sees.") : null,
      body.length ? el("div", { class: "body" }, body) : null,
    );
  }

  block(item, messageId) {
    if ("toolUse" in item) return this.toolCall(item.toolUse);
    if ("toolResult" in item) return this.toolResult(item.toolResult, messageId);
    return block(item);
  }

  toolCall(use) {
    const status = el("span", { class: "status pending" }, "no result yet");
    const result = el("div", { class: "tool-result" });
    const details = el(
      "details",
      { class: "tool" },
      el("summary", {}, el("span", { class: "tool-name" }, use.name), " ", status),
      el("div", { class: "tool-body" }, el("h4", {}, "Input"), json(use.input ?? {}), result),
    );
    this.tools.set(use.toolUseId, { name: use.name, status, result });
    return details;
  }

  /** Folds a result beneath its call; a result whose call is not shown stands on its own. */
  toolResult(result, messageId) {
    const call = this.tools.get(result.toolUseId);
    const heading = el("h4", {}, "Result ", el("span", { class: "muted" }, `(message #${messageId})`));
    if (call) {
      call.status.replaceWith((call.status = statusBadge(result.status ?? "success")));
      replace(call.result, heading, resultContent(result));
      return el("p", { class: "muted small" }, `The result of ${call.name}, folded beneath its call above: ${result.status ?? "success"}.`);
    }
    return el(
      "details",
      { class: "tool" },
      el("summary", {}, el("span", { class: "tool-name" }, result.toolUseId), " ", statusBadge(result.status ?? "success")),
      el("div", { class: "tool-body" }, heading, resultContent(result)),
    );
  }

  /** Fetches the messages after the last one shown, page by page. */
  async catchUp() {
    for (;;) {
      const data = await query(MESSAGES, { sessionId: this.sessionId, agentId: this.agentId, after: this.cursor });
      const page = data.agent?.messagesConnection;
      if (!page) return;
      page.nodes.forEach((message) => this.add(message));
      if (page.pageInfo.endCursor) this.cursor = page.pageInfo.endCursor;
      if (!page.pageInfo.hasNextPage) return;
    }
  }
}

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

const NODE_LISTS = [
  "completed_nodes",
  "failed_nodes",
  "interrupted_nodes",
  "node_history",
  "execution_order",
  "next_nodes_to_execute",
];

function nodeName(node) {
  return typeof node === "string" ? node : node?.node_id ?? node?.name ?? JSON.stringify(node);
}

/** A Graph's or Swarm's serialize_state(): its status, its nodes' results, its order; then the whole of it. */
function multiAgent(state) {
  const value = state.state ?? {};
  const facts = [];
  const fact = (name, ...shown) => facts.push(el("dt", {}, name), el("dd", {}, shown));
  if (value.status) fact("Status", statusBadge(String(value.status).toLowerCase()));
  if (value.current_node) fact("Current node", nodeName(value.current_node));
  const results = Object.entries(value.node_results ?? {});
  if (results.length) {
    fact(
      "Node results",
      el(
        "ul",
        { class: "labels" },
        results.map(([node, result]) =>
          el("li", {}, `${node} `, result?.status ? statusBadge(String(result.status).toLowerCase()) : null),
        ),
      ),
    );
  }
  for (const name of NODE_LISTS) {
    if (Array.isArray(value[name]) && value[name].length) {
      const label = name[0].toUpperCase() + name.slice(1).replaceAll("_", " ");
      fact(label, value[name].map(nodeName).join(" → "));
    }
  }
  if (value.accumulated_usage?.totalTokens !== undefined) fact("Tokens", number(value.accumulated_usage.totalTokens));
  if (typeof value.execution_time === "number") fact("Execution time", `${number(value.execution_time)} ms`);
  const kind = value.type === "swarm" ? "Swarm" : value.type === "graph" ? "Graph" : "Multi-agent";
  return el(
    "section",
    { class: "multi-agent", "aria-label": `${kind} ${state.multiAgentId}` },
    el("h3", {}, `${kind} ${state.multiAgentId}`),
    el("p", { class: "muted small" }, "updated ", time(state.updatedAt)),
    facts.length ? el("dl", {}, facts) : null,
    el("details", {}, el("summary", {}, "Whole state"), json(value)),
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

  async function addAgent(agent) {
    if (transcripts.has(agent.agentId)) return;
    const transcript = new Transcript(sessionId, agent.agentId);
    transcripts.set(agent.agentId, transcript);
    const id = `agent:${encodeURIComponent(agent.agentId)}`;
    contents.firstChild.append(el("li", {}, el("a", { href: `#${id}` }, agent.agentId)));
    contents.hidden = transcripts.size < 2;
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
  if (!session.agents.length) agents.append(el("p", { class: "muted" }, "No agent yet."));
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
