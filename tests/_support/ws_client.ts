/** A WebSocket test client over a real socket: frames queued, awaited with timeouts. */

import { createInboxQueue } from "./inbox_queue.ts";

/** A server frame as received. */
// deno-lint-ignore no-explicit-any
export type Frame = Record<string, any>;

/** A connected test client. */
export interface TestClient {
  socket: WebSocket;
  /** Every frame received so far, in order. */
  received: Frame[];
  send(frame: unknown): void;
  sendRaw(data: string | ArrayBuffer): void;
  /** The next frame (matching `where`) not yet taken; fails after `timeoutMs`. */
  next(where?: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  /**
   * Waits for the next frame matching `barrier` and takes it, then takes and returns the
   * frames matching `where` that came before it.
   */
  before(
    barrier: (f: Frame) => boolean,
    where?: (f: Frame) => boolean,
    timeoutMs?: number,
  ): Promise<Frame[]>;
  /**
   * Pings the server and takes and returns the frames matching `where` that came before its
   * pong: what the server had sent by the time it read the ping (a barrier on the socket).
   */
  settled(where?: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame[]>;
  /** Resolves with the close code and reason. */
  closed: Promise<{ code: number; reason: string }>;
  close(): Promise<void>;
}

/** Opens a WebSocket with the `relais.v1` subprotocol and waits until it is open. */
export async function connect(
  url: string,
  options: { protocols?: string[] } = {},
): Promise<TestClient> {
  const socket = new WebSocket(url, options.protocols ?? ["relais.v1"]);
  const queue = createInboxQueue<Frame>("frame", () => socket.readyState === WebSocket.CLOSED);
  let closedResolve!: (v: { code: number; reason: string }) => void;
  const closed = new Promise<{ code: number; reason: string }>((r) => closedResolve = r);
  socket.onmessage = (e) => {
    queue.push(JSON.parse(e.data as string) as Frame);
  };
  socket.onclose = (e) => {
    closedResolve({ code: e.code, reason: e.reason });
    queue.wake();
  };
  await new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = (e) => reject(new Error(`WebSocket failed: ${(e as ErrorEvent).message}`));
  });
  socket.onerror = () => {};

  return {
    socket,
    received: queue.received,
    send: (frame) => socket.send(JSON.stringify(frame)),
    sendRaw: (data) => socket.send(data),
    next: queue.next,
    before: queue.before,
    settled(where, timeoutMs) {
      const ref = `barrier-${crypto.randomUUID()}`;
      socket.send(JSON.stringify({ type: "ping", ref }));
      return queue.before((f) => f.type === "pong" && f.ref === ref, where, timeoutMs);
    },
    closed,
    async close() {
      if (socket.readyState !== WebSocket.CLOSED) {
        socket.close();
        await closed;
      }
    },
  };
}
