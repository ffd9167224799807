// GraphQL over HTTP to this server's /graphql, with the key the reader typed for this tab.

import { view } from "./links.js";

const KEY = "session-graphql.viewer.key";
const TENANT = "session-graphql.viewer.tenant";
export const ENDPOINT = new URL("graphql", document.baseURI).href;

/** The key and tenant typed for this tab: sessionStorage, so closing the tab forgets them. */
export const credentials = {
  get key() {
    return sessionStorage.getItem(KEY) ?? "";
  },
  get tenant() {
    return sessionStorage.getItem(TENANT) ?? "";
  },
  save(key, tenant) {
    sessionStorage.setItem(KEY, key.trim().replace(/^Bearer\s+/i, ""));
    if (tenant.trim()) sessionStorage.setItem(TENANT, tenant.trim());
    else sessionStorage.removeItem(TENANT);
  },
  forget() {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(TENANT);
  },
  /** What GraphQL requests carry, over HTTP as headers and over WebSocket in connection_init;
   * the tenant of the page's URL wins over the one typed with the key. */
  headers() {
    const headers = {};
    const tenant = view.tenant || this.tenant;
    if (this.key) headers.Authorization = `Bearer ${this.key}`;
    if (tenant) headers["X-Tenant"] = tenant;
    return headers;
  },
};

export class GraphQLError extends Error {
  constructor(message, code, status) {
    super(message);
    this.code = code;
    this.status = status;
  }

  get unauthenticated() {
    return this.code === "UNAUTHENTICATED" || this.status === 401;
  }
}

/** The data of one operation; a GraphQLError carrying the first error's code otherwise. */
export async function query(document, variables = {}) {
  let response;
  try {
    response = await fetch(ENDPOINT, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", ...credentials.headers() },
      body: JSON.stringify({ query: document, variables }),
    });
  } catch (error) {
    throw new GraphQLError(`The server cannot be reached (${error.message}).`, "UNREACHABLE", 0);
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new GraphQLError(`The server answered HTTP ${response.status} without GraphQL.`, "HTTP", response.status);
  }
  const first = body.errors?.[0];
  if (first) {
    throw new GraphQLError(first.message, first.extensions?.code ?? "ERROR", response.status);
  }
  return body.data;
}
