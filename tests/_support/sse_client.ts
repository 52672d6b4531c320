/** A Server-Sent Events test client over a real HTTP connection: events parsed and queued. */

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
  /** Collects events matching `where` for `ms`, taking them. */
  collect(ms: number, where?: (e: SseEvent) => boolean): Promise<SseEvent[]>;
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
  const received: SseEvent[] = [];
  const unread: SseEvent[] = [];
  let wake: (() => void) | undefined;
  let done = false;
  if (res.status !== 200) {
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      body: text ? JSON.parse(text) : undefined,
      received,
      next: () => Promise.reject(new Error(`No stream: status ${res.status}`)),
      collect: () => Promise.resolve([]),
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
          const event = { id, frame: JSON.parse(data.join("\n")) as Frame };
          received.push(event);
          unread.push(event);
          wake?.();
        }
      }
    } catch {
      // Aborted by close().
    } finally {
      done = true;
      wake?.();
    }
  })();

  async function next(where: (e: SseEvent) => boolean = () => true, timeoutMs = 3000) {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const index = unread.findIndex(where);
      if (index >= 0) return unread.splice(index, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0 || done) {
        throw new Error(
          `No matching event within ${timeoutMs} ms; unread: ${
            JSON.stringify(unread).slice(0, 500)
          }`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      wake = undefined;
    }
  }

  return {
    status: res.status,
    headers: res.headers,
    received,
    next,
    async collect(ms, where = () => true) {
      await new Promise((r) => setTimeout(r, ms));
      const out: SseEvent[] = [];
      for (let i = 0; i < unread.length;) {
        if (where(unread[i])) out.push(...unread.splice(i, 1));
        else i++;
      }
      return out;
    },
    ended,
    async close() {
      abort.abort();
      await ended;
    },
  };
}
