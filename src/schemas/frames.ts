/**
 * WebSocket frames: the client-to-server union, validated at the socket boundary, and
 * the server-to-client frames as types. SSE and long-polling carry the same server frames.
 */

import * as v from "valibot";
import type { ClientEnvelope } from "./envelope.ts";

const ref = v.optional(v.pipe(v.string(), v.maxLength(100)));
const text = (max: number) => v.pipe(v.string(), v.minLength(1), v.maxLength(max));
const seq = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(Number.MAX_SAFE_INTEGER));

/**
 * A stream epoch as a client sends it back (from `welcome.epoch`): up to 64 letters,
 * digits, `-` or `_`. Also read from SSE and poll query strings.
 */
export const EpochSchema = v.pipe(
  v.string("expected the epoch of a welcome"),
  v.regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected the epoch of a welcome: 1 to 64 of "A-Z a-z 0-9 - _"'),
);

/** A file a message points to: an http(s) URL and a name. */
const AttachmentFrameSchema = v.strictObject({
  url: v.pipe(
    text(2000),
    v.url("expected a URL"),
    v.check((s) => /^https?:$/.test(new URL(s).protocol), 'expected an "http" or "https" URL'),
  ),
  name: text(255),
});

/** Every frame a client may send. */
export const ClientFrameSchema = v.variant("type", [
  v.strictObject({
    type: v.literal("hello"),
    token: v.optional(text(8192)),
    ticket: v.optional(text(256)),
    after: v.optional(seq),
    /** The `welcome.epoch` that `after` belongs to. */
    epoch: v.optional(EpochSchema),
    ref,
  }),
  v.strictObject({ type: v.literal("ack"), id: text(200), ref }),
  v.strictObject({ type: v.literal("read"), id: text(200), ref }),
  /** A read receipt in a conversation: read up to message `seq`. */
  v.strictObject({ type: v.literal("read"), conversation: text(200), seq, ref }),
  v.strictObject({ type: v.literal("ping"), ref }),
  /** The answer to a server `ping` (liveness). */
  v.strictObject({ type: v.literal("pong"), ref }),
  v.strictObject({
    type: v.literal("msg.send"),
    conversation: text(200),
    text: v.pipe(v.string(), v.maxLength(100_000)),
    client_id: text(200),
    attachments: v.optional(v.pipe(v.array(AttachmentFrameSchema), v.maxLength(10))),
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
  | {
    type: "welcome";
    user: string;
    session: string;
    /** The epoch of the stream: sent back with `seq` (or a later position) on a resume. */
    epoch: string;
    seq: number;
    recovered: boolean;
    /** The server's heartbeat interval: a client may call the connection dead after two. */
    heartbeat_ms?: number;
  }
  | { type: "event"; seq: number; envelope: ClientEnvelope }
  | {
    type: "msg";
    conversation: string;
    seq: number;
    from: string;
    text: string;
    at: string;
    client_id?: string;
    /** The message's id. */
    id?: string;
    /** The recipient's stream position of this item (what `hello.after` resumes from). */
    stream_seq?: number;
    /** Present when the frame tells of an edit or a deletion of message `seq`. */
    change?: "edit" | "delete";
    attachments?: { url: string; name: string }[];
    edited_at?: string;
    deleted?: true;
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
  | { type: "pong"; ref?: string }
  /**
   * Kill switches: which features are on for this user and why the others are off. Sent
   * after the welcome when something is off, and whenever that changes.
   */
  | {
    type: "control";
    features: Record<"realtime" | "notifications" | "messaging" | "email", boolean>;
    disabled: { feature: string; reason: string; until?: string }[];
  }
  /** A newer item replaced an unread one with the same collapse key (unread count unchanged). */
  | {
    type: "update";
    seq: number;
    envelope: ClientEnvelope;
    replaces: { id: string; seq: number };
  }
  /** LOW items of a short window, grouped: each entry is an `event` (or `update`) frame. */
  | { type: "batch"; items: ServerFrame[] }
  /**
   * The push budget was spent: `count` items (seqs `first_seq`..`last_seq`) are in the
   * stream but were not pushed; resume or list the inbox to get them.
   */
  | { type: "summary"; count: number; first_seq: number; last_seq: number }
  /** Heartbeat: a WebSocket client answers `pong`; SSE clients only see the stream is alive. */
  | { type: "ping" }
  /** SSE and poll only: the server ended the stream (a WebSocket gets a close code instead). */
  | { type: "close"; code: number; reason: string };

/** WebSocket close codes of the protocol. */
export const CLOSE = {
  unauthenticated: 4001,
  forbidden: 4003,
  policy: 4008,
  idle: 4009,
  /** The server cannot serve now (its store is out of reach): reconnect after a while. */
  tryAgainLater: 1013,
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

/** Encodes an `update` frame around an envelope already encoded as JSON. */
export function encodeUpdateFrame(
  seq: number,
  clientEnvelopeJson: string,
  replaces: { id: string; seq: number },
): string {
  return `{"type":"update","seq":${seq},"envelope":${clientEnvelopeJson},"replaces":${
    JSON.stringify(replaces)
  }}`;
}

/** Encodes a `batch` frame around frames already encoded. */
export function encodeBatchFrame(frames: string[]): string {
  return `{"type":"batch","items":[${frames.join(",")}]}`;
}
