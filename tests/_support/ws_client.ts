/** A WebSocket test client over a real socket: frames queued, awaited with timeouts. */

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
  /** Collects frames matching `where` for `ms`, taking them. */
  collect(ms: number, where?: (f: Frame) => boolean): Promise<Frame[]>;
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
  const received: Frame[] = [];
  const unread: Frame[] = [];
  let wake: (() => void) | undefined;
  let closedResolve!: (v: { code: number; reason: string }) => void;
  const closed = new Promise<{ code: number; reason: string }>((r) => closedResolve = r);
  socket.onmessage = (e) => {
    const frame = JSON.parse(e.data as string) as Frame;
    received.push(frame);
    unread.push(frame);
    wake?.();
  };
  socket.onclose = (e) => {
    closedResolve({ code: e.code, reason: e.reason });
    wake?.();
  };
  await new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = (e) => reject(new Error(`WebSocket failed: ${(e as ErrorEvent).message}`));
  });
  socket.onerror = () => {};

  async function next(where: (f: Frame) => boolean = () => true, timeoutMs = 3000) {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const index = unread.findIndex(where);
      if (index >= 0) return unread.splice(index, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0 || socket.readyState === WebSocket.CLOSED) {
        throw new Error(
          `No matching frame within ${timeoutMs} ms; unread: ${
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
    socket,
    received,
    send: (frame) => socket.send(JSON.stringify(frame)),
    sendRaw: (data) => socket.send(data),
    next,
    async collect(ms, where = () => true) {
      await new Promise((r) => setTimeout(r, ms));
      const out: Frame[] = [];
      for (let i = 0; i < unread.length;) {
        if (where(unread[i])) out.push(...unread.splice(i, 1));
        else i++;
      }
      return out;
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
