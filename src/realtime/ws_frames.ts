/**
 * Client frames of the `relais.v1` WebSocket protocol: decoding a text frame into a valid
 * {@linkcode ClientFrame}, and acting on the frames of an attached connection (acks, reads,
 * presence, typing and messages). The connection's life cycle (hello, deadlines, floods,
 * close codes) is `ws_connection.ts`.
 */

import * as v from "valibot";
import type { UserPrincipal } from "../auth/principal.ts";
import { AppError } from "../errors.ts";
import { type ClientFrame, ClientFrameSchema } from "../schemas/frames.ts";
import { fieldIssues } from "../validate.ts";
import type { WsProtocolDeps } from "./ws_types.ts";

/** A frame of an attached connection: everything but `hello`, `ping` and `pong`. */
export type SessionFrame = Exclude<ClientFrame, { type: "hello" | "ping" | "pong" }>;

/** A decoded frame, or the `error` frame its sender gets instead. */
export type DecodedFrame =
  | { ok: true; frame: ClientFrame }
  | { ok: false; code: string; message: string; ref?: string };

function refOf(raw: unknown): string | undefined {
  if (typeof raw !== "object" || raw === null) return undefined;
  const ref = (raw as Record<string, unknown>).ref;
  return typeof ref === "string" && ref.length <= 100 ? ref : undefined;
}

/**
 * Parses and validates the JSON of a text frame. A frame that fails validation is answered
 * with its `ref` when it carries a usable one, so the client knows which request failed.
 */
export function decodeClientFrame(text: string): DecodedFrame {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, code: "invalid_json", message: "Frame is not valid JSON" };
  }
  const parsed = v.safeParse(ClientFrameSchema, raw);
  if (parsed.success) return { ok: true, frame: parsed.output };
  const [first] = fieldIssues(parsed.issues);
  const ref = refOf(raw);
  return {
    ok: false,
    code: "validation_failed",
    message: `Invalid frame: "${first.path}": ${first.message}`,
    ...(ref !== undefined ? { ref } : {}),
  };
}

/** The attached connection a {@linkcode SessionFrame} came from, and how to answer it. */
export interface FrameSource {
  deps: Pick<WsProtocolDeps, "sessions" | "messaging" | "onError">;
  user: UserPrincipal;
  connId: string;
  send(text: string): void;
  error(code: string, message: string, ref?: string, retryAfterMs?: number): void;
}

/**
 * Acts on a frame of an attached connection, once the guard let it through. Conversation
 * frames are answered after their commit without holding the connection's next frames back:
 * the conversation actor keeps one connection's messages in their order.
 */
export async function handleSessionFrame(source: FrameSource, frame: SessionFrame) {
  const { deps: { sessions, messaging }, user, connId } = source;
  switch (frame.type) {
    case "ack":
      if (!(await sessions.ack(user.id, frame.id))) {
        source.error("not_found", `Unknown item "${frame.id}"`, frame.ref);
      }
      return;
    case "read":
      if ("conversation" in frame) {
        return later(source, messaging?.read(user.id, frame.conversation, frame.seq), frame.ref);
      }
      if (!(await sessions.read(user.id, frame.id))) {
        source.error("not_found", `Unknown inbox item "${frame.id}"`, frame.ref);
      }
      return;
    case "presence.set":
      sessions.notify(user.id, { type: "conn.status", connId, status: frame.status });
      return;
    case "msg.send": {
      const sent = messaging?.send(user.id, frame.conversation, {
        text: frame.text,
        client_id: frame.client_id,
        ...(frame.attachments ? { attachments: frame.attachments } : {}),
      });
      // A new message reaches this connection through the stream; a resend does not.
      return later(
        source,
        sent?.then((r) => r.created ? undefined : source.send(messaging!.frameOf(r.message))),
        frame.ref,
      );
    }
    case "typing":
      return later(source, messaging?.typing(user.id, frame.conversation), frame.ref);
  }
}

/** Sends the error of an action answered later, if it fails. */
function later(source: FrameSource, action: Promise<unknown> | undefined, ref?: string) {
  if (!action) return source.error("unsupported", "Conversations are not available", ref);
  action.catch((e) => {
    if (e instanceof AppError) return source.error(e.code, e.message, ref, e.retryAfterMs);
    source.deps.onError("WebSocket frame failed", e);
    source.error("internal", "Internal error", ref);
  });
}
