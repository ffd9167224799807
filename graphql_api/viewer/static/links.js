// The viewer's URLs: the list at ./ with its filters in the query, a session at ?session=, one
// agent's checkpoint at &agent=&asOf=, and a message as the fragment #msg:<agent>:<messageId>.

export function sessionUrl(sessionId, extra = {}) {
  const params = new URLSearchParams({ session: sessionId, ...extra });
  return `?${params}`;
}

export function messageAnchor(agentId, messageId) {
  return `msg:${encodeURIComponent(agentId)}:${messageId}`;
}

export function messageUrl(sessionId, agentId, messageId) {
  return `${sessionUrl(sessionId)}#${messageAnchor(agentId, messageId)}`;
}

export function listUrl(params) {
  const kept = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value) kept.set(name, value);
  const query = kept.toString();
  return query ? `?${query}` : "./";
}
