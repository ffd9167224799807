// The viewer's URLs: the list at ./ with its filters in the query, a session at ?session= (and
// &tenant=), one agent's checkpoint at &agent=&asOf=, a message as the fragment #msg:<agent>:<id>.

/** The tenant the page reads in, from its URL: a key bound to no tenant lists every tenant's
 * sessions, and a session opened from that list is read in its own tenant (sent as X-Tenant). */
export const view = { tenant: "" };

/** A session's URL; ``tenant`` only where it is not the default one. */
export function sessionUrl(sessionId, extra = {}, tenant = view.tenant) {
  const named = tenant && tenant !== "default" ? { tenant } : {};
  const params = new URLSearchParams({ session: sessionId, ...named, ...extra });
  return `?${params}`;
}

export function messageAnchor(agentId, messageId) {
  return `msg:${encodeURIComponent(agentId)}:${messageId}`;
}

export function messageUrl(sessionId, agentId, messageId, tenant = view.tenant) {
  return `${sessionUrl(sessionId, {}, tenant)}#${messageAnchor(agentId, messageId)}`;
}

export function listUrl(params) {
  const kept = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value) kept.set(name, value);
  const query = kept.toString();
  return query ? `?${query}` : "./";
}
