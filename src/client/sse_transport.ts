/**
 * The SSE transport: an `EventSource` on `/v1/sse` with a single-use ticket (an
 * `EventSource` cannot send headers). The browser's own reconnection would reuse the spent
 * ticket, so the client reconnects itself, resuming with `?after=` and `?epoch=`. Event ids
 * are `<epoch>:<seq>`: the seq is the stream position, the epoch the welcome's.
 */

import { closeInfoOf, type Transport, type TransportContext } from "./transport.ts";
import type { ServerFrame } from "./types.ts";

/** Opens an event stream. */
export function openEventSource(context: TransportContext): Transport {
  const ES = context.runtime.EventSource ?? globalThis.EventSource;
  let source: EventSource | undefined;
  let done = false;

  function finish(info: { code: number; reason: string }) {
    if (done) return;
    done = true;
    source?.close();
    context.events.closed(info);
  }

  (async () => {
    const ticket = await context.auth.ticket();
    if (done) return;
    const query = new URLSearchParams({ ticket });
    if (context.after !== undefined) query.set("after", String(context.after));
    if (context.epoch !== undefined) query.set("epoch", context.epoch);
    const es = source = new ES(`${context.baseUrl}/v1/sse?${query}`);
    es.onmessage = (event) => {
      if (done) return;
      let frame: ServerFrame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      const id = event.lastEventId;
      const position = id ? Number(id.slice(id.lastIndexOf(":") + 1)) : undefined;
      context.events.frame(frame, Number.isSafeInteger(position) ? position : undefined);
      if (frame.type === "close") finish({ code: frame.code, reason: frame.reason });
    };
    // EventSource errors carry no status: blocked, refused and dropped look the same.
    es.onerror = () => finish({ code: 1006, reason: "Event stream failed" });
  })().catch((error) => finish(closeInfoOf(error)));

  return {
    kind: "sse",
    send: () => false,
    close() {
      done = true;
      source?.close();
    },
  };
}
