/**
 * The WebSocket upgrade on Deno, holding no more per socket than the socket needs.
 *
 * `hono/deno`'s helper makes, for every socket, an init object of closures and getters
 * (which V8 keeps as a dictionary), two `URL`s, a `WSContext`, and four `on*` handlers,
 * each a closure that Deno wraps again. Measured in a heap snapshot of 1,000 idle sockets,
 * that was about 2 KB per socket, none of it needed: relais reads no URL from the socket,
 * and one listener object can take all four events.
 *
 * This helper does what `hono/deno`'s does (the same `Deno.upgradeWebSocket` call, the
 * first offered subprotocol unless the options name one, the same events with a
 * `WSContext`) with one small object per socket: {@linkcode DenoSocket}, which is both
 * the context's init and the socket's listener (`handleEvent`), its methods on the
 * prototype.
 */

import {
  defineWebSocketHelper,
  type UpgradeWebSocket,
  WSContext,
  type WSEvents,
  type WSReadyState,
} from "hono/ws";

/** The four events a socket's listener takes. */
const EVENTS = ["open", "message", "close", "error"] as const;

/** One socket: what `WSContext` reads from its init, and the listener of its events. */
class DenoSocket {
  readonly raw: WebSocket;
  readonly url = null;
  readonly events: WSEvents<WebSocket>;
  /** The context the events are given, made once this object (its init) exists. */
  context: WSContext<WebSocket> | undefined = undefined;

  constructor(raw: WebSocket, events: WSEvents<WebSocket>) {
    this.raw = raw;
    this.events = events;
  }

  get protocol(): string {
    return this.raw.protocol;
  }

  get readyState(): WSReadyState {
    return this.raw.readyState as WSReadyState;
  }

  send(source: string | ArrayBuffer | Uint8Array<ArrayBuffer>) {
    this.raw.send(source);
  }

  close(code?: number, reason?: string) {
    this.raw.close(code, reason);
  }

  handleEvent(event: Event) {
    const ws = this.context!;
    switch (event.type) {
      case "open":
        return this.events.onOpen?.(event, ws);
      case "message":
        return this.events.onMessage?.(event as MessageEvent, ws);
      case "close":
        return this.events.onClose?.(event as CloseEvent, ws);
      case "error":
        return this.events.onError?.(event, ws);
    }
  }
}

/** `hono/deno`'s `upgradeWebSocket`, with one object per socket instead of a dozen. */
export const upgradeWebSocket: UpgradeWebSocket<WebSocket, Deno.UpgradeWebSocketOptions> =
  defineWebSocketHelper<WebSocket, Deno.UpgradeWebSocketOptions>((c, events, options) => {
    if (c.req.header("upgrade") !== "websocket") return;
    const subprotocol = c.req.header("sec-websocket-protocol")?.split(",")[0]?.trim();
    const { response, socket } = Deno.upgradeWebSocket(c.req.raw, {
      ...(subprotocol ? { protocol: subprotocol } : {}),
      ...options,
    });
    const lean = new DenoSocket(socket, events);
    lean.context = new WSContext<WebSocket>(lean);
    for (const type of EVENTS) socket.addEventListener(type, lean);
    return response;
  });
