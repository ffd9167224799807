// A Graph's or Swarm's state, as its serialize_state() stored it: the facts a reader looks for
// first, then the whole of it folded.

import { statusBadge } from "./content.js";
import { el, json, number, time } from "./dom.js";

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
export function multiAgent(state) {
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
