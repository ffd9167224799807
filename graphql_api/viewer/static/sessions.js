// The home page: the newest sessions first, filtered as the dashboards filter (time range, labels,
// snapshot-backed), or the messages a search finds, with its snippets; page by page.

import { query } from "./api.js";
import { el, marked, number, replace, time } from "./dom.js";
import { listUrl, messageUrl, sessionUrl } from "./links.js";

const PAGE = 25;
export const RANGES = [
  ["", "Any time"],
  ["1h", "Last hour"],
  ["24h", "Last 24 hours"],
  ["7d", "Last 7 days"],
  ["30d", "Last 30 days"],
];
const RANGE_MS = { h: 3600_000, d: 86400_000 };
const ORDERS = [
  ["", "Newest first", { field: "CREATED_AT", direction: "DESC" }],
  ["active", "Recently active first", { field: "LAST_ACTIVITY_AT", direction: "DESC" }],
  ["tokens", "Most tokens first", { field: "TOTAL_TOKENS", direction: "DESC" }],
];

const SESSIONS = `query ViewerSessions($filter: ConversationFilter, $orderBy: ListOrder, $first: Int, $after: String, $last: Int, $before: String) {
  sessions(filter: $filter, orderBy: $orderBy, first: $first, after: $after, last: $last, before: $before) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    nodes {
      sessionId tenant title labels snapshotBacked createdAt lastActivityAt messageCount
      totals { totalTokens }
      agents { agentId }
    }
  }
}`;

const SEARCH = `query ViewerSearch($query: String!, $filter: ConversationFilter, $after: String) {
  searchMessages(query: $query, filter: $filter, first: ${PAGE}, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { snippet node { sessionId agentId messageId role createdAt agent { session { tenant } } } }
  }
}`;

export const ACTIVITY = `subscription ViewerActivity($filter: ConversationFilter) {
  sessionActivity(filter: $filter) { __typename }
}`;

export class FilterError extends Error {}

/** "user=ana, channel=web" as {user: "ana", channel: "web"}. */
export function parseLabels(written) {
  const labels = {};
  for (const pair of written.split(",").map((part) => part.trim()).filter(Boolean)) {
    const at = pair.indexOf("=");
    if (at < 1) throw new FilterError(`Labels are name=value pairs separated by commas, not "${pair}".`);
    labels[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return labels;
}

/** The ConversationFilter of the page's query parameters; the range applies to what is listed. */
export function filterOf(params, rangeField) {
  const filter = {};
  const range = /^(\d+)([hd])$/.exec(params.get("range") ?? "");
  if (range) {
    filter[rangeField] = { start: new Date(Date.now() - range[1] * RANGE_MS[range[2]]).toISOString() };
  }
  const labels = parseLabels(params.get("labels") ?? "");
  if (Object.keys(labels).length) filter.labels = labels;
  if (params.get("snapshots") === "yes") filter.snapshotBacked = true;
  if (params.get("snapshots") === "no") filter.snapshotBacked = false;
  return filter;
}

function choice(name, label, options, selected) {
  return el(
    "label",
    {},
    label,
    el(
      "select",
      { name },
      options.map(([value, text]) => el("option", { value, selected: value === selected }, text)),
    ),
  );
}

function filters(params, navigate) {
  const form = el(
    "form",
    { class: "filters", role: "search", "aria-label": "Sessions" },
    el(
      "label",
      { class: "grow" },
      "Search messages",
      el("input", {
        type: "search",
        name: "q",
        value: params.get("q") ?? "",
        placeholder: 'words, "a phrase", or, -excluded',
      }),
    ),
    choice("range", "Time range", RANGES, params.get("range") ?? ""),
    el(
      "label",
      {},
      "Labels",
      el("input", { name: "labels", value: params.get("labels") ?? "", placeholder: "user=ana, channel=web" }),
    ),
    choice(
      "snapshots",
      "Snapshot-backed",
      [
        ["", "Either"],
        ["yes", "Yes"],
        ["no", "No"],
      ],
      params.get("snapshots") ?? "",
    ),
    choice(
      "order",
      "Order",
      ORDERS.map(([value, text]) => [value, text]),
      params.get("order") ?? "",
    ),
    el("button", { type: "submit" }, "Apply"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    navigate(listUrl(Object.fromEntries(new FormData(form))));
  });
  return form;
}

function labelList(labels) {
  const entries = Object.entries(labels ?? {});
  if (!entries.length) return el("span", { class: "muted" }, "none");
  return el(
    "ul",
    { class: "labels" },
    entries.map(([name, value]) => el("li", {}, `${name}=${value}`)),
  );
}

function sessionRow(session) {
  return el(
    "tr",
    {},
    el(
      "td",
      { class: "session-name" },
      el("a", { href: sessionUrl(session.sessionId, {}, session.tenant), "data-nav": true }, session.title || session.sessionId),
      session.title ? el("div", { class: "muted small" }, session.sessionId) : null,
      session.snapshotBacked ? el("span", { class: "badge" }, "snapshots") : null,
    ),
    el("td", {}, labelList(session.labels)),
    el("td", {}, session.agents.map((agent) => agent.agentId).join(", ")),
    el("td", { class: "num" }, number(session.messageCount)),
    el("td", { class: "num" }, number(session.totals.totalTokens)),
    el("td", {}, time(session.lastActivityAt)),
  );
}

function pager(links) {
  const shown = links.filter(Boolean);
  return shown.length ? el("nav", { class: "pager", "aria-label": "Pages" }, shown) : null;
}

async function sessionList(params) {
  const order = ORDERS.find(([value]) => value === (params.get("order") ?? "")) ?? ORDERS[0];
  const backwards = Boolean(params.get("before"));
  const data = await query(SESSIONS, {
    filter: filterOf(params, "lastActivity"),
    orderBy: order[2],
    ...(backwards ? { last: PAGE, before: params.get("before") } : { first: PAGE, after: params.get("after") }),
  });
  const { nodes, pageInfo, totalCount } = data.sessions;
  const base = Object.fromEntries([...params].filter(([name]) => name !== "after" && name !== "before"));
  const newer = backwards ? pageInfo.hasPreviousPage : Boolean(params.get("after"));
  const older = backwards ? true : pageInfo.hasNextPage;
  return [
    el("p", { class: "muted", role: "status" }, `${number(totalCount)} sessions`),
    nodes.length
      ? el(
          "table",
          { class: "sessions" },
          el(
            "thead",
            {},
            el(
              "tr",
              {},
              ["Session", "Labels", "Agents", "Messages", "Tokens", "Last activity"].map((name) =>
                el("th", { scope: "col" }, name),
              ),
            ),
          ),
          el("tbody", {}, nodes.map(sessionRow)),
        )
      : el("p", {}, "No session matches."),
    pager([
      newer && el("a", { href: listUrl({ ...base, before: pageInfo.startCursor }), "data-nav": true }, "← Newer"),
      older && nodes.length === PAGE
        ? el("a", { href: listUrl({ ...base, after: pageInfo.endCursor }), "data-nav": true }, "Older →")
        : null,
    ]),
  ];
}

async function searchResults(params) {
  const data = await query(SEARCH, {
    query: params.get("q"),
    filter: filterOf(params, "created"),
    after: params.get("after"),
  });
  const { edges, pageInfo } = data.searchMessages;
  const base = Object.fromEntries([...params].filter(([name]) => name !== "after"));
  return [
    el("p", { class: "muted", role: "status" }, edges.length ? "Best matches first" : "No message matches."),
    el(
      "ol",
      { class: "hits" },
      edges.map(({ snippet, node }) =>
        el(
          "li",
          {},
          el(
            "a",
            {
              href: messageUrl(node.sessionId, node.agentId, node.messageId, node.agent.session.tenant),
              "data-nav": true,
            },
            `${node.sessionId} · ${node.agentId} · #${node.messageId}`,
          ),
          " ",
          el("span", { class: "muted small" }, node.role, " · ", time(node.createdAt)),
          el("p", { class: "snippet" }, marked(snippet)),
        ),
      ),
    ),
    pager([
      params.get("after") && el("a", { href: listUrl(base), "data-nav": true }, "← First page"),
      pageInfo.hasNextPage &&
        el("a", { href: listUrl({ ...base, after: pageInfo.endCursor }), "data-nav": true }, "More results →"),
    ]),
  ];
}

/** Renders the home page into ``main``; ``live`` refreshes the first page when sessions change. */
export async function showSessions(main, params, { navigate, live }) {
  document.title = params.get("q") ? `Search: ${params.get("q")} · Conversations` : "Conversations · Strands session store";
  const results = el("div", { class: "results" });
  replace(main, el("h1", {}, "Conversations"), filters(params, navigate), results);
  const load = params.get("q") ? searchResults : sessionList;
  try {
    replace(results, ...(await load(params)).filter(Boolean));
  } catch (error) {
    if (!(error instanceof FilterError)) throw error;
    replace(results, el("p", { class: "error", role: "alert" }, error.message));
    return;
  }
  if (!params.get("q") && !params.get("after") && !params.get("before")) {
    let pending = null;
    const refresh = async () => {
      const fresh = el("div", {}, (await sessionList(params)).filter(Boolean));
      // Unchanged, the list stays as it is, and so does the keyboard's focus in it.
      if (fresh.textContent !== results.textContent) replace(results, [...fresh.childNodes]);
    };
    const soon = () => {
      clearTimeout(pending);
      pending = setTimeout(refresh, 300);
    };
    live(ACTIVITY, () => ({ filter: filterOf(params, "lastActivity") }), soon, refresh, 5000);
  }
}
