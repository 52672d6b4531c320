/**
 * The long-poll transport: `GET /v1/poll` in a loop, each answer's `seq` and `epoch` sent
 * back as the next `after` and `epoch`, and its `session` kept so presence and buffering
 * last between polls.
 */

import {
  closeCodeForStatus,
  closeInfoOf,
  retryAfterMs,
  type Transport,
  type TransportContext,
} from "./transport.ts";
import type { ServerFrame } from "./types.ts";

/** A poll answer. */
interface Batch {
  session: string;
  epoch: string;
  seq: number;
  frames: ServerFrame[];
}

/** Starts polling. */
export function openPoll(context: TransportContext): Transport {
  const fetchFn = context.runtime.fetch;
  const abort = new AbortController();
  let done = false;

  function finish(info: { code: number; reason: string; retryAfterMs?: number }) {
    if (done) return;
    done = true;
    abort.abort();
    context.events.closed(info);
  }

  (async () => {
    let session: string | undefined;
    let after = context.after;
    let epoch = context.epoch;
    while (!done) {
      const query = new URLSearchParams({ timeout: String(context.pollTimeoutMs) });
      if (after !== undefined) query.set("after", String(after));
      if (epoch !== undefined) query.set("epoch", epoch);
      if (session) query.set("session", session);
      const headers = await context.auth.headers();
      if (!headers.authorization) query.set("ticket", await context.auth.ticket());
      // A request that outlives its timeout by far went to a dead connection.
      const timer = setTimeout(() => abort.abort(), context.pollTimeoutMs + 15_000);
      let res: Response;
      try {
        res = await fetchFn(`${context.baseUrl}/v1/poll?${query}`, {
          headers,
          signal: abort.signal,
          cache: "no-store",
        });
      } finally {
        clearTimeout(timer);
      }
      if (done) return;
      if (!res.ok) {
        await res.body?.cancel();
        return finish({
          code: closeCodeForStatus(res.status),
          reason: `Poll failed with status ${res.status}`,
          retryAfterMs: retryAfterMs(res.headers.get("retry-after")),
        });
      }
      const batch = await res.json() as Batch;
      session = batch.session;
      for (const frame of batch.frames) {
        if (done) return;
        context.events.frame(frame);
        if (frame.type === "close") return finish({ code: frame.code, reason: frame.reason });
      }
      if (done) return;
      context.events.advance(batch.seq, batch.epoch);
      after = batch.seq;
      epoch = batch.epoch;
    }
  })().catch((error) => finish(closeInfoOf(error)));

  return {
    kind: "poll",
    send: () => false,
    close() {
      done = true;
      abort.abort();
    },
  };
}
