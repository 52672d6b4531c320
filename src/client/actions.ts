/**
 * The user's actions on the inbox and on conversations: over the WebSocket when it is open
 * (one frame with a `ref`, which an `error` frame refusing it echoes), else over the HTTP API.
 *
 * The server answers no frame when an action succeeds, so over the WebSocket:
 * - a message is sent once the sender's own `msg` frame (with its `client_id`) comes back,
 *   and refused by an `error` frame with its ref; a connection lost before either tries it
 *   again on the next one, with the same `client_id` (the server stores a `client_id` once);
 * - an ack cannot be confirmed, but the server delivers an unacked item again: every
 *   delivery of an item the application acked is answered with the ack again.
 */

import { createSeenIds } from "./dedup.ts";
import type { Http } from "./http.ts";
import type { InboxPage, RelaisClient } from "./relais_types.ts";
import type { ClientFrame, ServerFrame } from "./types.ts";

/** The client's methods that act for the user, beside its connection. */
export type Actions = Pick<
  RelaisClient,
  | "ack"
  | "read"
  | "readAll"
  | "notifications"
  | "send"
  | "typing"
  | "readConversation"
  | "conversations"
  | "messages"
  | "request"
>;

/**
 * An action over the WebSocket that failed: `code` is the server's `error` frame's
 * (`rate_limited`, `not_found`, `not_member`…), or `connection_lost` / `closed` for a
 * message the client could not get confirmed.
 */
export class ActionError extends Error {
  constructor(readonly code: string, message: string, readonly retryAfterMs?: number) {
    super(message);
    this.name = "ActionError";
  }
}

/** How many connections a message is tried on before `send()` gives up. */
const SEND_TRIES = 3;
/** The ref prefix of acks the SDK sends again by itself: their errors are its own. */
const REACK = "reack.";

/** What {@linkcode createActions} needs. */
export interface ActionsOptions {
  http: Http;
  /** Sends a frame over the open WebSocket; false when there is none (HTTP is used). */
  sendFrame(frame: ClientFrame): boolean;
  /** The user the server welcomed: a message's own copy comes from them. */
  user(): string | undefined;
  /** How many acked ids are remembered, to ack their redeliveries again. */
  ackMemory: number;
}

/** The actions, and what the client tells them of its connection and frames. */
export interface ActionsLink {
  actions: Actions;
  /**
   * Settles the message a `msg` or `error` frame answers. True when the frame answered the
   * SDK itself (an ack it sent again) and is not for the application.
   */
  answer(frame: ServerFrame): boolean;
  /** An item was delivered: acks it again if the application acked it already. */
  delivered(id: string): void;
  /**
   * A connection was welcomed, or none will be until the user is active (dormant): the
   * messages not answered on the last one are sent again.
   */
  resume(): void;
  /** The client stopped: the messages not answered are rejected. */
  stop(reason: string): void;
}

/** A message sent over the WebSocket, waiting for its own `msg` frame or an error. */
interface WaitingSend {
  conversation: string;
  text: string;
  clientId: string;
  /** Connections it was sent on. */
  tries: number;
  resolve(clientId: string): void;
  reject(error: unknown): void;
}

/** A random UUID v4, even where `crypto.randomUUID` is missing. */
function uuid(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // Pages served over plain HTTP (not localhost) have no randomUUID.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const path = (s: string) => encodeURIComponent(s);

/** Creates the user's actions. */
export function createActions(options: ActionsOptions): ActionsLink {
  const { http, sendFrame } = options;
  const typingSent = new Map<string, number>();
  const acked = createSeenIds(options.ackMemory);
  /** Messages sent over the WebSocket and not answered yet, by the ref of their last try. */
  const waiting = new Map<string, WaitingSend>();
  let refs = 0;
  const ref = (action: string) => `${action}${++refs}`;
  const ackPath = (id: string) => `/v1/me/notifications/${path(id)}/ack`;

  function trySend(w: WaitingSend) {
    w.tries++;
    const r = ref("send.");
    const { conversation, text, clientId } = w;
    const frame: ClientFrame = {
      type: "msg.send",
      conversation,
      text,
      client_id: clientId,
      ref: r,
    };
    if (sendFrame(frame)) {
      waiting.set(r, w);
      return;
    }
    http.request("POST", `/v1/conversations/${path(conversation)}/messages`, {
      text,
      client_id: clientId,
    }).then(() => w.resolve(clientId), w.reject);
  }

  function settle(fail: (w: WaitingSend) => ActionError | undefined) {
    const unanswered = [...waiting.values()];
    waiting.clear();
    for (const w of unanswered) {
      const error = fail(w);
      if (error) w.reject(error);
      else trySend(w);
    }
  }

  const actions: Actions = {
    async ack(id) {
      // Remembered before it is sent: if this ack does not take (the connection ends
      // first), the server delivers the item again and `delivered` acks it again.
      acked.check(id);
      if (sendFrame({ type: "ack", id, ref: ref("ack.") })) return;
      await http.request("POST", ackPath(id));
    },
    async read(id) {
      if (sendFrame({ type: "read", id, ref: ref("read.") })) return;
      await http.request("POST", `/v1/me/notifications/${path(id)}/read`);
    },
    async readAll() {
      return (await http.request<{ read: number }>("POST", "/v1/me/notifications/read-all")).read;
    },
    notifications(query = {}) {
      const q = new URLSearchParams();
      if (query.after !== undefined) q.set("after", String(query.after));
      if (query.limit !== undefined) q.set("limit", String(query.limit));
      if (query.unread) q.set("unread", "true");
      return http.request<InboxPage>("GET", `/v1/me/notifications${q.size ? `?${q}` : ""}`);
    },
    send(conversation, text, opts = {}) {
      const clientId = opts.clientId ?? uuid();
      return new Promise((resolve, reject) => {
        trySend({ conversation, text, clientId, tries: 0, resolve, reject });
      });
    },
    async typing(conversation) {
      const now = Date.now();
      if (now - (typingSent.get(conversation) ?? 0) < 3000) return;
      typingSent.set(conversation, now);
      if (sendFrame({ type: "typing", conversation, ref: ref("typing.") })) return;
      await http.request("POST", `/v1/conversations/${path(conversation)}/typing`);
    },
    async readConversation(conversation, seq) {
      if (sendFrame({ type: "read", conversation, seq, ref: ref("read.") })) return;
      await http.request("POST", `/v1/conversations/${path(conversation)}/read`, { seq });
    },
    conversations: <T>() => http.request<T>("GET", "/v1/me/conversations"),
    messages<T>(conversation: string, query: { before?: number; limit?: number } = {}) {
      const q = new URLSearchParams();
      if (query.before !== undefined) q.set("before", String(query.before));
      if (query.limit !== undefined) q.set("limit", String(query.limit));
      return http.request<T>(
        "GET",
        `/v1/conversations/${path(conversation)}/messages${q.size ? `?${q}` : ""}`,
      );
    },
    request: (method, p, body) => http.request(method, p, body),
  };

  return {
    actions,
    answer(frame) {
      if (frame.type === "msg") {
        // A new message comes back through the sender's stream, a resend of a stored one
        // straight to the connection: either says it is stored.
        if (frame.client_id === undefined || waiting.size === 0) return false;
        const me = options.user();
        for (const [r, w] of waiting) {
          if (
            w.clientId === frame.client_id && w.conversation === frame.conversation &&
            (me === undefined || frame.from === me)
          ) {
            waiting.delete(r);
            w.resolve(w.clientId);
          }
        }
        return false;
      }
      if (frame.type !== "error" || frame.ref === undefined) return false;
      const w = waiting.get(frame.ref);
      if (w) {
        waiting.delete(frame.ref);
        w.reject(new ActionError(frame.code, frame.message, frame.retry_after_ms));
        return false;
      }
      // An ack sent again is refused when the first one took meanwhile (`not_found`); one
      // refused for a limit is sent again at the next delivery.
      return frame.ref.startsWith(REACK);
    },
    delivered(id) {
      if (!acked.has(id)) return;
      if (sendFrame({ type: "ack", id, ref: ref(REACK) })) return;
      // The next delivery tries again if this fails.
      http.request("POST", ackPath(id)).catch(() => {});
    },
    resume() {
      settle((w) =>
        w.tries < SEND_TRIES ? undefined : new ActionError(
          "connection_lost",
          `Message "${w.clientId}" not confirmed: ${w.tries} connections ended before its answer`,
        )
      );
    },
    stop(reason) {
      settle((w) => new ActionError("closed", `Message "${w.clientId}" not confirmed: ${reason}`));
    },
  };
}
