// The browser side of graphql-transport-ws (github.com/enisdenjo/graphql-ws, PROTOCOL.md): one
// WebSocket for all of the page's subscriptions, opened again after a loss; each subscription is
// sent again with the variables it gives at that moment (its cursor), so it resumes where it was.

import { ENDPOINT, credentials } from "./api.js";

const PROTOCOL = "graphql-transport-ws";
const decoder = new TextDecoder();
const RETRY_MS = [500, 1000, 2000, 5000, 10000];
/** Close codes after which trying again cannot help: the server refused the subscriptions. */
const FINAL = new Set([4400, 4401, 4403, 4406, 4409, 4429]);

function socketUrl() {
  const url = new URL(ENDPOINT);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

export class LiveConnection {
  constructor({ onStatus = () => {} } = {}) {
    this.onStatus = onStatus;
    this.subscriptions = new Map();
    this.nextId = 1;
    this.socket = null;
    this.acknowledged = false;
    this.failures = 0;
    this.closed = false;
    this.timer = null;
  }

  /**
   * Subscribes; ``variables`` is a function, asked again at each (re)connection.
   * ``handlers``: next(data), error(message, final), complete(). Returns the unsubscribe function.
   */
  subscribe(document, variables, handlers) {
    const id = String(this.nextId++);
    this.subscriptions.set(id, { document, variables, handlers });
    if (this.acknowledged) this.sendSubscribe(id);
    else this.open();
    return () => {
      if (this.subscriptions.delete(id) && this.acknowledged) this.send({ id, type: "complete" });
    };
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.subscriptions.clear();
    this.socket?.close(1000, "page closed");
  }

  open() {
    if (this.socket || this.closed) return;
    const socket = new WebSocket(socketUrl(), PROTOCOL);
    this.socket = socket;
    this.onStatus("connecting");
    socket.onopen = () => this.send({ type: "connection_init", payload: credentials.headers() });
    // The server may send its JSON as binary frames.
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) =>
      this.receive(JSON.parse(typeof event.data === "string" ? event.data : decoder.decode(event.data)));
    socket.onclose = (event) => this.lost(socket, event);
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  sendSubscribe(id) {
    const { document, variables } = this.subscriptions.get(id);
    this.send({ id, type: "subscribe", payload: { query: document, variables: variables() } });
  }

  receive(message) {
    const subscription = this.subscriptions.get(message.id);
    switch (message.type) {
      case "connection_ack":
        this.acknowledged = true;
        this.failures = 0;
        this.onStatus("live");
        for (const id of this.subscriptions.keys()) this.sendSubscribe(id);
        break;
      case "ping":
        this.send({ type: "pong" });
        break;
      case "next":
        if (subscription && message.payload?.errors?.length) {
          subscription.handlers.error(message.payload.errors[0].message, false);
        } else if (subscription) {
          subscription.handlers.next(message.payload.data);
        }
        break;
      case "error":
        this.subscriptions.delete(message.id);
        subscription?.handlers.error(message.payload?.[0]?.message ?? "subscription refused", true);
        break;
      case "complete":
        this.subscriptions.delete(message.id);
        subscription?.handlers.complete?.();
        break;
      default:
        break;
    }
  }

  lost(socket, event) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.acknowledged = false;
    if (this.closed) return;
    const reason = event.reason || `closed (${event.code})`;
    if (FINAL.has(event.code)) {
      this.onStatus("refused", reason);
      for (const { handlers } of this.subscriptions.values()) handlers.error(reason, true);
      this.subscriptions.clear();
      return;
    }
    const wait = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
    this.failures += 1;
    this.onStatus("reconnecting", reason);
    // A server without subscriptions never acknowledges: after a few tries the page polls instead.
    if (this.failures >= 3) {
      for (const { handlers } of this.subscriptions.values()) handlers.error(reason, true);
      this.subscriptions.clear();
      return;
    }
    this.timer = setTimeout(() => this.open(), wait);
  }
}
