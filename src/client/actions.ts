/**
 * The user's actions on the inbox and on conversations: over the WebSocket when it is open
 * (one frame, no request), else over the HTTP API.
 */

import type { Http } from "./http.ts";
import type { InboxPage, RelaisClient } from "./relais_types.ts";
import type { ClientFrame } from "./types.ts";

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

/** What {@linkcode createActions} needs. */
export interface ActionsOptions {
  http: Http;
  /** Sends a frame over the open WebSocket; false when there is none (HTTP is used). */
  sendFrame(frame: ClientFrame): boolean;
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
export function createActions({ http, sendFrame }: ActionsOptions): Actions {
  const typingSent = new Map<string, number>();
  return {
    async ack(id) {
      if (sendFrame({ type: "ack", id })) return;
      await http.request("POST", `/v1/me/notifications/${path(id)}/ack`);
    },
    async read(id) {
      if (sendFrame({ type: "read", id })) return;
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
    async send(conversation, text, opts = {}) {
      const clientId = opts.clientId ?? uuid();
      if (sendFrame({ type: "msg.send", conversation, text, client_id: clientId })) return clientId;
      await http.request("POST", `/v1/conversations/${path(conversation)}/messages`, {
        text,
        client_id: clientId,
      });
      return clientId;
    },
    async typing(conversation) {
      const now = Date.now();
      if (now - (typingSent.get(conversation) ?? 0) < 3000) return;
      typingSent.set(conversation, now);
      if (sendFrame({ type: "typing", conversation })) return;
      await http.request("POST", `/v1/conversations/${path(conversation)}/typing`);
    },
    async readConversation(conversation, seq) {
      if (sendFrame({ type: "read", conversation, seq })) return;
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
}
