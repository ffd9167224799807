// Builds DOM from text nodes and attributes only: nothing a message holds is ever parsed as HTML.

/** An element with attributes (on* names add listeners) and children (strings become text nodes). */
export function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2).toLowerCase(), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

/** Replaces a node's children; null, undefined and false among them are left out. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** "2026-01-02T03:04:05+00:00" as the reader's local date and time. */
export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** A <time> element: local time shown, the instant itself in its datetime attribute. */
export function time(iso) {
  return el("time", { datetime: iso, title: iso }, when(iso));
}

export function number(value) {
  return value === null || value === undefined ? "" : Number(value).toLocaleString();
}

export function bytes(size) {
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} kB`;
  return `${(size / 1024 / 1024).toFixed(1)} MB`;
}

/** A snippet's matches, between ** marks, as <mark> elements. */
export function marked(snippet) {
  return snippet.split("**").map((part, index) => (index % 2 === 1 ? el("mark", {}, part) : part));
}

export function json(value) {
  return el("pre", { class: "json" }, JSON.stringify(value, null, 2));
}
