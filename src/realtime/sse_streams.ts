/**
 * Server-Sent Events: a user's stream as a `text/event-stream` body.
 *
 * Every server frame goes out as one unnamed event whose `data:` is the frame's JSON, so
 * `EventSource.onmessage` sees them all. Frames that are a stream position carry it as
 * `id: <epoch>:<seq>`, so a reconnecting `EventSource` resumes with `Last-Event-ID`. A
 * stream the server ends (idle, expired token, kill switch) gets a last `close` frame with
 * the code a WebSocket would have been closed with. Web APIs only: the route gives the
 * stream to the runtime's server as a response body.
 */

import type { UserPrincipal } from "../auth/principal.ts";
import { closeReason } from "../controls/guard.ts";
import { AppError } from "../errors.ts";
import { CLOSE, encodeFrame } from "../schemas/frames.ts";
import type { Outlet } from "./hub.ts";
import type { Sessions, StreamPosition } from "./session.ts";

/** Dependencies of {@linkcode createSseStreams}. */
export interface SseDeps {
  sessions: Sessions;
  /** A `ping` frame goes out when nothing else was sent for this long. */
  heartbeatMs: number;
  /** No activity for this long ends the stream with 4009; 0 disables it. */
  idleTimeoutMs: number;
  /** Bytes a client may leave unread before it is cut off with 4008 (default 4 MiB). */
  maxBufferedBytes?: number;
  /** The reconnection delay suggested to `EventSource` (default 2000 ms). */
  retryMs?: number;
}

/** Opens and tracks SSE streams. */
export interface SseStreams {
  /**
   * Attaches a stream for `user`, resuming after `position`; the body is ready to return.
   * Rejects (and attaches nothing) if the session cannot be attached.
   */
  open(user: UserPrincipal, position?: StreamPosition): Promise<ReadableStream<Uint8Array>>;
  /** Open streams. */
  size(): number;
  /** Ends every open stream (shutdown). */
  closeAll(): void;
}

const encoder = new TextEncoder();

/** The close code of an admission refusal, or `undefined` for any other error. */
function closeCodeOf(error: AppError): number | undefined {
  if (error.code === "feature_disabled") return CLOSE.forbidden;
  if (error.code === "rate_limited") return CLOSE.policy;
  return undefined;
}
const PING = `data: ${encodeFrame({ type: "ping" })}\n\n`;

/** Creates the SSE stream factory. */
export function createSseStreams(deps: SseDeps): SseStreams {
  const maxBuffered = deps.maxBufferedBytes ?? 4 * 1024 * 1024;
  const open = new Set<(code: number, reason: string) => void>();

  return {
    async open(user, position) {
      let controller!: ReadableStreamDefaultController<Uint8Array>;
      let connId: string | undefined;
      let ended = false;
      let lastSent = Date.now();
      let lastActive = Date.now();
      const timers: ReturnType<typeof setTimeout>[] = [];
      // The epoch of the stream's ids: the session's when it sends the first of them (the
      // welcome), so the ids always agree with `welcome.epoch`.
      let epoch: string | undefined;

      function finish() {
        if (ended) return;
        ended = true;
        open.delete(end);
        for (const t of timers) clearTimeout(t);
        if (connId) deps.sessions.detach(connId);
      }

      function write(text: string) {
        if (ended) return;
        try {
          controller.enqueue(encoder.encode(text));
        } catch {
          return finish();
        }
        lastSent = Date.now();
        // A client that stops reading must not make the server hold its whole stream.
        if ((controller.desiredSize ?? 0) < 0) end(CLOSE.policy, "Client too slow");
      }

      function end(code: number, reason: string) {
        if (ended) return;
        const last = `data: ${encodeFrame({ type: "close", code, reason })}\n\n`;
        try {
          controller.enqueue(encoder.encode(last));
          controller.close();
        } catch {
          // Already cancelled by the client.
        }
        finish();
      }

      const outlet: Outlet = {
        transport: "sse",
        send(text, seq) {
          if (seq === undefined) return write(`data: ${text}\n\n`);
          epoch ??= deps.sessions.epochOf(user.id);
          write(`id: ${epoch}:${seq}\ndata: ${text}\n\n`);
        },
        close: end,
        activity: () => void (lastActive = Date.now()),
        bufferedAmount: () => ended ? 0 : maxBuffered - (controller.desiredSize ?? maxBuffered),
      };

      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          controller = c;
        },
        cancel: finish,
      }, { highWaterMark: maxBuffered, size: (chunk) => chunk.byteLength });

      write(`retry: ${deps.retryMs ?? 2000}\n\n`);
      open.add(end);
      try {
        const attached = await deps.sessions.attach(user, outlet, position);
        if (ended) deps.sessions.detach(attached.connId);
        else connId = attached.connId;
      } catch (error) {
        // Refused by the admission (switch or cap): an `EventSource` cannot read an
        // error status, so the stream says why in its `close` frame, as a socket would.
        const code = error instanceof AppError ? closeCodeOf(error) : undefined;
        if (code === undefined) {
          finish();
          throw error;
        }
        end(code, closeReason((error as AppError).message));
      }
      if (ended) return stream;

      const beat = () => {
        if (Date.now() - lastSent >= deps.heartbeatMs) write(PING);
        if (ended) return;
        timers[0] = setTimeout(beat, Math.max(1, deps.heartbeatMs - (Date.now() - lastSent)));
      };
      timers[0] = setTimeout(beat, deps.heartbeatMs);
      if (deps.idleTimeoutMs > 0) {
        const checkIdle = () => {
          const quiet = Date.now() - lastActive;
          if (quiet >= deps.idleTimeoutMs) return end(CLOSE.idle, "Idle timeout");
          timers[1] = setTimeout(checkIdle, deps.idleTimeoutMs - quiet);
        };
        timers[1] = setTimeout(checkIdle, deps.idleTimeoutMs);
      }
      if (user.expiresAt !== undefined) {
        const expiresAt = user.expiresAt;
        const watch = () => {
          // setTimeout holds 32-bit delays; a later expiry is re-armed when it comes closer.
          const left = expiresAt - Date.now();
          if (left <= 0) return end(CLOSE.unauthenticated, "Token expired");
          timers[2] = setTimeout(watch, Math.min(left, 2 ** 31 - 1));
        };
        watch();
      }
      return stream;
    },
    size: () => open.size,
    closeAll() {
      for (const end of [...open]) end(1001, "Server shutting down");
    },
  };
}
