/**
 * WebSocket frames: the client-to-server union, validated at the socket boundary, and
 * the server-to-client frames as types. SSE and long-polling carry the same server frames.
 */

import * as v from "valibot";
import type { ClientEnvelope } from "./envelope.ts";

const ref = v.optional(v.pipe(v.string(), v.maxLength(100)));
const text = (max: number) => v.pipe(v.string(), v.minLength(1), v.maxLength(max));
const seq = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(Number.MAX_SAFE_INTEGER));

/** Every frame a client may send. */
export const ClientFrameSchema = v.variant("type", [
  v.strictObject({
    type: v.literal("hello"),
    token: v.optional(text(8192)),
    ticket: v.optional(text(256)),
    after: v.optional(seq),
    ref,
  }),
  v.strictObject({ type: v.literal("ack"), id: text(200), ref }),
  v.strictObject({ type: v.literal("read"), id: text(200), ref }),
  v.strictObject({ type: v.literal("ping"), ref }),
  v.strictObject({
    type: v.literal("msg.send"),
    conversation: text(200),
    text: v.pipe(v.string(), v.maxLength(100_000)),
    client_id: text(200),
    ref,
  }),
  v.strictObject({ type: v.literal("typing"), conversation: text(200), ref }),
  v.strictObject({
    type: v.literal("presence.set"),
    status: v.picklist(["online", "away"]),
    ref,
  }),
]);

/** A validated client frame. */
export type ClientFrame = v.InferOutput<typeof ClientFrameSchema>;

/** Presence of a user across all of their connections. */
export type PresenceStatus = "online" | "away" | "offline";

/** Frames the server sends. */
export type ServerFrame =
  | { type: "welcome"; user: string; session: string; seq: number; recovered: boolean }
  | { type: "event"; seq: number; envelope: ClientEnvelope }
  | {
    type: "msg";
    conversation: string;
    seq: number;
    from: string;
    text: string;
    at: string;
    client_id?: string;
  }
  | { type: "receipt"; conversation: string; user: string; seq: number }
  | { type: "typing"; conversation: string; user: string }
  | { type: "presence"; user: string; status: PresenceStatus }
  | {
    type: "error";
    code: string;
    message: string;
    ref?: string;
    retry_after_ms?: number;
  }
  | { type: "pong"; ref?: string };

/** WebSocket close codes of the protocol. */
export const CLOSE = {
  unauthenticated: 4001,
  forbidden: 4003,
  policy: 4008,
  idle: 4009,
} as const;

/** The WebSocket subprotocol. */
export const SUBPROTOCOL = "relais.v1";

/**
 * Encodes an `event` frame around an envelope already encoded as JSON, so a frame going
 * to many users costs one `JSON.stringify` of the envelope, not one per recipient.
 */
export function encodeEventFrame(seq: number, clientEnvelopeJson: string): string {
  return `{"type":"event","seq":${seq},"envelope":${clientEnvelopeJson}}`;
}

/** Encodes any server frame. */
export function encodeFrame(frame: ServerFrame): string {
  return JSON.stringify(frame);
}
