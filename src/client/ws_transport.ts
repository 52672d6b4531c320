/**
 * The WebSocket transport: `relais.v1` frames both ways, resume with `hello.after` and
 * `hello.epoch`.
 */

import { closeInfoOf, type Transport, type TransportContext } from "./transport.ts";
import type { ServerFrame } from "./types.ts";

/** Opens a WebSocket to `/v1/ws` and says hello. */
export function openWebSocket(context: TransportContext): Transport {
  const WS = context.runtime.WebSocket ?? globalThis.WebSocket;
  let socket: WebSocket | undefined;
  let done = false;

  function finish(info: { code: number; reason: string }) {
    if (done) return;
    done = true;
    context.events.closed(info);
  }

  (async () => {
    const credential = await context.auth.hello();
    if (done) return;
    const url = `${context.baseUrl.replace(/^http/, "ws")}/v1/ws`;
    const ws = socket = new WS(url, "relais.v1");
    ws.onopen = () => {
      ws.send(JSON.stringify({
        type: "hello",
        ...credential,
        ...(context.after !== undefined ? { after: context.after } : {}),
        ...(context.epoch !== undefined ? { epoch: context.epoch } : {}),
      }));
    };
    ws.onmessage = (event) => {
      if (done || typeof event.data !== "string") return;
      let frame: ServerFrame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      context.events.frame(frame);
    };
    ws.onclose = (event) => finish({ code: event.code || 1006, reason: event.reason });
    // An error is always followed by a close event.
    ws.onerror = () => {};
  })().catch((error) => finish(closeInfoOf(error)));

  return {
    kind: "ws",
    send(frame) {
      if (done || socket?.readyState !== 1) return false;
      socket.send(JSON.stringify(frame));
      return true;
    },
    close() {
      done = true;
      try {
        socket?.close(1000, "Client closed");
      } catch {
        // Not open yet or already closed.
      }
    },
  };
}
