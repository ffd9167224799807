// The viewer's entry: picks the view from the URL, asks for a key when the server wants one, and
// gives each view its live updates (subscriptions, or polling where the server has none).

import { credentials } from "./api.js";
import { el, replace } from "./dom.js";
import { view } from "./links.js";
import { LiveConnection } from "./live.js";
import { showSessions } from "./sessions.js";
import { showSession } from "./transcript.js";

const POLL_MS = 2000;
const main = document.getElementById("main");
const forget = document.getElementById("forget-key");
const status = el("span", { class: "live-status", role: "status", "aria-live": "polite" });
document.querySelector(".top nav").prepend(status);
let leaving = [];
let routed = null;
let onFragment = null;

function setStatus(state, detail = "") {
  const words = {
    connecting: "Connecting for live updates…",
    live: "● Live",
    reconnecting: `Reconnecting… ${detail}`,
    refused: `Live updates refused: ${detail}`,
    polling: "Checking for changes every few seconds",
  };
  status.textContent = words[state] ?? state;
  status.dataset.state = state;
}

/**
 * One view's live updates: a subscription on the page's connection; where it fails (a server
 * without subscriptions, a lost connection), ``poll`` every few seconds instead.
 */
function liveFor(connection) {
  return (document, variables, onData, poll = onData, every = POLL_MS) => {
    // A view the reader already left (a slow load finishing late) starts nothing.
    if (connection.closed) return;
    let timer = null;
    const startPolling = () => {
      if (timer !== null) return;
      if (!connection.acknowledged) setStatus("polling");
      const tick = async () => {
        try {
          await poll();
          if (!connection.acknowledged) setStatus("polling");
        } catch (error) {
          // A key revoked while the page was open: ask for another one.
          if (error.unauthenticated) {
            timer = null;
            route();
            return;
          }
          setStatus("reconnecting", error.message);
        }
        if (timer !== null) timer = setTimeout(tick, every);
      };
      timer = setTimeout(tick, 0);
    };
    const unsubscribe = connection.subscribe(document, variables, {
      next: onData,
      error: (_message, final) => {
        if (final) startPolling();
      },
      complete: startPolling,
    });
    leaving.push(() => {
      unsubscribe();
      clearTimeout(timer);
      timer = null;
    });
  };
}

function keyForm(error) {
  const form = el(
    "form",
    { class: "key-form", "aria-labelledby": "key-title" },
    el("h1", { id: "key-title" }, "This server needs a key"),
    el(
      "p",
      {},
      "Type an API key (a reader key is enough). It is kept for this tab only, in sessionStorage, and sent with every request; closing the tab forgets it.",
    ),
    credentials.key ? el("p", { class: "error", role: "alert" }, `The key was refused: ${error.message}`) : null,
    el("label", {}, "API key", el("input", { type: "password", name: "key", required: true, autocomplete: "off", autofocus: true })),
    el("label", {}, "Tenant (only for a key bound to no tenant)", el("input", { name: "tenant", value: credentials.tenant })),
    el("button", { type: "submit" }, "Open"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = new FormData(form);
    credentials.save(String(values.get("key")), String(values.get("tenant")));
    route();
  });
  return form;
}

async function route() {
  for (const leave of leaving.splice(0)) leave();
  routed = location.search;
  onFragment = null;
  forget.hidden = !credentials.key;
  const params = new URLSearchParams(location.search);
  view.tenant = params.get("session") ? params.get("tenant") ?? "" : "";
  const connection = new LiveConnection({ onStatus: setStatus });
  leaving.push(() => connection.close());
  const show = params.get("session") ? showSession : showSessions;
  setStatus("");
  try {
    onFragment = await show(main, params, { navigate, live: liveFor(connection) });
  } catch (error) {
    for (const leave of leaving.splice(0)) leave();
    if (error.unauthenticated) {
      replace(main, keyForm(error));
      main.querySelector("input").focus();
    } else {
      replace(
        main,
        el("h1", {}, "Something went wrong"),
        el("p", { class: "error", role: "alert" }, `${error.message}${error.code ? ` (${error.code})` : ""}`),
        el("p", {}, el("a", { href: "./", "data-nav": true }, "All conversations")),
      );
    }
  }
}

export function navigate(url) {
  history.pushState(null, "", url);
  route().then(() => {
    if (!location.hash) main.focus({ preventScroll: true });
  });
  window.scrollTo(0, 0);
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-nav]");
  if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(link.href);
});
window.addEventListener("popstate", () => {
  // A message link within the page changes only the fragment: scroll to it, keep the live view.
  if (location.search === routed) onFragment?.();
  else route();
});
forget.addEventListener("click", () => {
  credentials.forget();
  route();
});
route();
