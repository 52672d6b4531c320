/**
 * Which kill-switchable feature a server frame belongs to, and filtering frames for a
 * connection whose user has features turned off.
 *
 * Frames arrive encoded (a broadcast frame is encoded once for every recipient), so the
 * common frames are classified from their text: an `event` or `update` frame starts
 * with its envelope's `metadata`, whose first `"type":"` key is the item type (a JSON
 * string cannot contain an unescaped quote, so no value can fake it). Only a `batch`
 * frame, rare and only when a feature is off, is parsed and rebuilt.
 */

import type { Feature } from "./control.ts";

const ITEM_FEATURE: Record<string, Feature> = {
  NOTIFICATION: "notifications",
  SYSTEM: "notifications",
  MESSAGE: "messaging",
  REALTIME: "realtime",
};

const FRAME_FEATURE: Record<string, Feature> = {
  msg: "messaging",
  receipt: "messaging",
  typing: "messaging",
  summary: "notifications",
};

const FRAME_TYPE = /^\{"type":"([a-z.]+)"/;
const ITEM_TYPE =
  /^\{"type":"(?:event|update)","seq":\d+,"envelope":\{"metadata":\{[^]*?"type":"([A-Z]+)"/;

/** The feature an envelope type belongs to. */
export function featureOfItemType(type: string): Feature | undefined {
  return ITEM_FEATURE[type];
}

/** The feature an encoded frame belongs to, or `undefined` for protocol frames. */
export function featureOfFrame(frame: string): Feature | undefined {
  const type = FRAME_TYPE.exec(frame)?.[1];
  if (type === undefined) return undefined;
  if (type === "event" || type === "update") {
    const item = ITEM_TYPE.exec(frame.slice(0, 1000))?.[1];
    return item === undefined ? undefined : ITEM_FEATURE[item];
  }
  return FRAME_FEATURE[type];
}

/** A decoded frame inside a batch. */
type Decoded = { type?: unknown; envelope?: { metadata?: { type?: unknown } }; items?: unknown };

function keep(frame: Decoded, off: ReadonlySet<Feature>): Decoded | undefined {
  if (frame.type === "batch" && Array.isArray(frame.items)) {
    const items = (frame.items as Decoded[]).map((f) => keep(f, off)).filter((f) => f);
    return items.length > 0 ? { ...frame, items } : undefined;
  }
  const itemType = frame.envelope?.metadata?.type;
  const feature = typeof itemType === "string"
    ? ITEM_FEATURE[itemType]
    : typeof frame.type === "string"
    ? FRAME_FEATURE[frame.type]
    : undefined;
  return feature && off.has(feature) ? undefined : frame;
}

/**
 * The frame as a connection may receive it with `off` features turned off: the same
 * text, a `batch` without the items of those features, or `undefined` to drop it.
 */
export function filterFrame(frame: string, off: ReadonlySet<Feature>): string | undefined {
  if (off.size === 0) return frame;
  if (frame.startsWith('{"type":"batch"')) {
    let decoded: Decoded;
    try {
      decoded = JSON.parse(frame);
    } catch {
      return frame;
    }
    const kept = keep(decoded, off);
    return kept === undefined ? undefined : kept === decoded ? frame : JSON.stringify(kept);
  }
  const feature = featureOfFrame(frame);
  return feature && off.has(feature) ? undefined : frame;
}
