// One agent's transcript: its turns in messageId order, each tool call with its result folded
// beneath it, tokens and latency on assistant turns, redactions marked.

import { query } from "./api.js";
import { block, resultContent, statusBadge } from "./content.js";
import { el, json, number, replace, time } from "./dom.js";
import { messageAnchor, messageUrl } from "./links.js";

export const MESSAGE_FIELDS = `messageId role effectiveMessage isRedacted createdAt latencyMs
  usage { inputTokens outputTokens totalTokens }`;

const MESSAGES = `query ViewerMessages($sessionId: String!, $agentId: String!, $after: String) {
  agent(sessionId: $sessionId, agentId: $agentId) {
    messagesConnection(first: 200, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes { ${MESSAGE_FIELDS} }
    }
  }
}`;

/** One agent's conversation, kept in messageId order as messages arrive. */
export class Transcript {
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
