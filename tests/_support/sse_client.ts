/** A Server-Sent Events test client over a real HTTP connection: events parsed and queued. */

import { createInboxQueue } from "./inbox_queue.ts";
import type { Frame } from "./ws_client.ts";

/** One parsed event: its `id:` (if any) and its `data:` as JSON. */
export interface SseEvent {
  id?: string;
  frame: Frame;
}

/** An open event stream. */
export interface SseClient {
  status: number;
  headers: Headers;
  /** Every event received so far, in order. */
  received: SseEvent[];
  /** The next event (matching `where`) not yet taken; fails after `timeoutMs`. */
  next(where?: (e: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent>;
  /**
   * Waits for the next event matching `barrier` and takes it, then takes and returns the
   * events matching `where` that came before it.
   */
  before(
    barrier: (e: SseEvent) => boolean,
    where?: (e: SseEvent) => boolean,
    timeoutMs?: number,
  ): Promise<SseEvent[]>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close(): Promise<void>;
}

/** Opens `url` as an event stream with optional headers; a non-200 answer is returned as is. */
export async function openSse(
  url: string,
  headers: Record<string, string> = {},
): Promise<SseClient & { body?: unknown }> {
  const abort = new AbortController();
  const res = await fetch(url, {
    headers: { accept: "text/event-stream", ...headers },
    signal: abort.signal,
  });
  let done = false;
  const queue = createInboxQueue<SseEvent>("event", () => done);
  if (res.status !== 200) {
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      body: text ? JSON.parse(text) : undefined,
      received: queue.received,
      next: () => Promise.reject(new Error(`No stream: status ${res.status}`)),
      before: () => Promise.reject(new Error(`No stream: status ${res.status}`)),
      ended: Promise.resolve(),
      close: () => Promise.resolve(),
    };
  }

  const ended = (async () => {
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      while (true) {
        const { value, done: end } = await reader.read();
        if (end) break;
        buffer += value;
        let cut: number;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let id: string | undefined;
          const data: string[] = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("id: ")) id = line.slice(4);
            else if (line.startsWith("data: ")) data.push(line.slice(6));
          }
          if (data.length === 0) continue;
          queue.push({ id, frame: JSON.parse(data.join("\n")) as Frame });
        }
      }
    } catch {
      // Aborted by close().
    } finally {
      done = true;
      queue.wake();
    }
  })();

  return {
    status: res.status,
    headers: res.headers,
    received: queue.received,
    next: queue.next,
    before: queue.before,
    ended,
    async close() {
      abort.abort();
      await ended;
    },
  };
}
