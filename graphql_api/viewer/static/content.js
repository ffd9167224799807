// One Strands message's content blocks as elements: text, tool calls and results, reasoning, and
// media as placeholders with their size (the bytes themselves are never shown).

import { bytes, el, json } from "./dom.js";

/** The size of Strands' base64 envelope ({"__bytes_encoded__": true, "data": ...}), or null. */
export function envelopeSize(value) {
  if (!value || value.__bytes_encoded__ !== true || typeof value.data !== "string") return null;
  const data = value.data.replace(/\s/g, "");
  const padding = data.endsWith("==") ? 2 : data.endsWith("=") ? 1 : 0;
  return Math.max(0, (data.length * 3) / 4 - padding);
}

function sourceSize(source) {
  if (!source) return "no source";
  const size = envelopeSize(source.bytes);
  if (size !== null) return bytes(size);
  if (typeof source.bytes === "string") return bytes(source.bytes.length);
  if (source.s3Location?.uri) return source.s3Location.uri;
  return "no bytes";
}

function media(kind, block) {
  const parts = [block.name, block.format].filter(Boolean).join(", ");
  return el(
    "span",
    { class: "media", role: "img", "aria-label": `${kind} ${parts}, ${sourceSize(block.source)}` },
    `${kind}${parts ? ` (${parts})` : ""} · ${sourceSize(block.source)}`,
  );
}

function text(value) {
  return el("div", { class: "text" }, value);
}

/** What a tool result's content holds: texts, JSON, media. */
export function resultContent(result) {
  return (result.content ?? []).map((item) => {
    if ("text" in item) return text(item.text);
    if ("json" in item) return json(item.json);
    if ("image" in item) return media("Image", item.image);
    if ("document" in item) return media("Document", item.document);
    return json(item);
  });
}

function reasoning(block) {
  const said = block.reasoningText?.text ?? (block.redactedContent ? "(redacted by the provider)" : "");
  return el("details", { class: "reasoning" }, el("summary", {}, "Reasoning"), text(said));
}

/**
 * A block other than toolUse and toolResult (the transcript folds those together);
 * anything unknown is shown as its JSON.
 */
export function block(value) {
  if ("text" in value) return text(value.text);
  if ("reasoningContent" in value) return reasoning(value.reasoningContent);
  if ("image" in value) return media("Image", value.image);
  if ("document" in value) return media("Document", value.document);
  if ("video" in value) return media("Video", value.video);
  if ("cachePoint" in value) return el("span", { class: "muted small" }, "cache point");
  if ("guardContent" in value) return text(value.guardContent?.text?.text ?? "");
  if ("citationsContent" in value) {
    return (value.citationsContent.content ?? []).map((part) => text(part.text ?? ""));
  }
  return json(value);
}

/** A status (a tool result's, a node's) as a badge its class colours. */
export function statusBadge(status) {
  return el("span", { class: `status ${status}` }, status);
}
