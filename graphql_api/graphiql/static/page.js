// strawberry's GraphiQL page, opening with the session store's example documents as tabs. It is a
// file rather than an inline script so the page's Content-Security-Policy can forbid inline scripts.
(function () {
  "use strict";

  // Shared links carry the query and variables in the URL (?q=...&variables=...), as strawberry's do.
  const parameters = {};
  for (const entry of window.location.search.slice(1).split("&")) {
    const eq = entry.indexOf("=");
    if (eq >= 0) {
      parameters[decodeURIComponent(entry.slice(0, eq))] = decodeURIComponent(entry.slice(eq + 1));
    }
  }

  function updateURL(data) {
    Object.assign(parameters, data);
    const search = Object.keys(parameters)
      .filter((key) => Boolean(parameters[key]))
      .map((key) => encodeURIComponent(key) + "=" + encodeURIComponent(parameters[key]))
      .join("&");
    history.replaceState(null, "", "?" + search);
  }

  const examples = JSON.parse(document.getElementById("graphiql-examples").textContent);
  const defaultTabs = examples.map((query) => ({ query }));
  if (parameters.q) {
    // GraphiQL shows only defaultTabs to a browser that has no tabs stored yet.
    defaultTabs.unshift({ query: parameters.q, variables: parameters.variables });
  }

  // A person exploring reads like a dashboard: from the read replica when the server has one (a
  // mutation still writes and reads on the primary). "x-read-from": "primary" in the Headers pane
  // overrides it.
  const headers = { "x-read-from": "replica" };
  const csrfToken = Cookies.get("csrftoken");
  if (csrfToken) {
    headers["x-csrftoken"] = csrfToken;
  }

  // Subscriptions go over a websocket to the same address (graphql-transport-ws, with GraphiQL's
  // bundled graphql-ws client); the Headers pane's Authorization and X-Tenant travel in its
  // connection_init payload, as a browser cannot set a websocket's headers.
  const url = window.location.href.split("?")[0].split("#")[0];
  const subscriptionUrl = url.replace(/^http/, "ws");
  const fetcher = GraphiQL.createFetcher({ url, subscriptionUrl, headers });

  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {
      fetcher,
      defaultTabs,
      query: parameters.q,
      variables: parameters.variables,
      onEditQuery: (query) => updateURL({ q: query }),
      onEditVariables: (variables) => updateURL({ variables }),
      plugins: [GraphiQLPluginExplorer.explorerPlugin()],
      // Headers open, where a secured server's Authorization goes.
      defaultEditorToolsVisibility: "headers",
      inputValueDeprecation: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
    }),
  );
})();
