/**
 * The relais client SDK: one live stream of the user's notifications, messages and
 * reactive-UI events, over whatever the network allows.
 *
 * It connects over WebSocket, falls back to Server-Sent Events, then to long-polling
 * (see `fallback.ts` for the policy), reconnects with exponential backoff and jitter,
 * resumes from the last stream position (its epoch and seq) so nothing is missed, and drops
 * the duplicates an at-least-once delivery brings. After an idle close (4009) it waits for
 * the user to be active again. It runs in browsers and in Deno, with no dependency:
 *
 * ```js
 * import { createRelais } from "https://relais.example.org/sdk/relais.js";
 * const relais = createRelais({ url: "https://relais.example.org", token: () => getJwt() });
 * relais.on("event", ({ envelope }) => console.log(envelope.metadata.topic, envelope.payload));
 * relais.connect();
 * ```
 *
 * @module
 */

import { createActions } from "./actions.ts";
import { backoffDelay, DEFAULT_BACKOFF } from "./backoff.ts";
import { watchBrowser } from "./browser_watch.ts";
import { createSeenIds } from "./dedup.ts";
import { createEmitter } from "./emitter.ts";
import {
  currentTransport,
  decide,
  DEFAULT_POLICY,
  type FallbackPolicy,
  type FallbackState,
  initialFallback,
  welcomed,
} from "./fallback.ts";
import { createHttp } from "./http.ts";
import { createLiveness } from "./liveness.ts";
import { openPoll } from "./poll_transport.ts";
import { createPushActions } from "./push.ts";
import type {
  ConnectionState,
  RelaisClient,
  RelaisEvents,
  RelaisOptions,
  RelaisTimers,
  StatusChange,
} from "./relais_types.ts";
import { openEventSource } from "./sse_transport.ts";
import type {
  CloseInfo,
  Transport,
  TransportAuth,
  TransportEvents,
  TransportFactory,
  TransportRuntime,
} from "./transport.ts";
import type { ClientFrame, ServerFrame, TransportKind } from "./types.ts";
import { openWebSocket } from "./ws_transport.ts";

export { ActionError } from "./actions.ts";
export { backoffDelay, type BackoffOptions } from "./backoff.ts";
export { decide, type Decision, type FallbackPolicy, type Outcome } from "./fallback.ts";
export type {
  ConnectionState,
  InboxItem,
  InboxPage,
  InboxQuery,
  RelaisClient,
  RelaisEvents,
  RelaisOptions,
  RelaisTimers,
  StatusChange,
} from "./relais_types.ts";
export { HttpError } from "./transport.ts";
export {
  PushError,
  type PushSubscriptionInfo,
  type PushWorkerRegistration,
  type SubscribePushOptions,
} from "./push.ts";
export type { CloseInfo, Transport, TransportContext, TransportFactory } from "./transport.ts";
export type * from "./types.ts";

/** The runtime's own timers. */
const GLOBAL_TIMERS: RelaisTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout> | undefined),
};

const FACTORIES: Record<TransportKind, TransportFactory> = {
  ws: openWebSocket,
  sse: openEventSource,
  poll: openPoll,
};

/** Creates a client; nothing happens until `connect()`. */
export function createRelais(options: RelaisOptions = {}): RelaisClient {
  const base = options.url ?? (globalThis as { location?: { origin: string } }).location?.origin;
  if (!base) throw new Error("relais: no url given and no page origin to default to");
  const baseUrl = base.replace(/\/+$/, "");
  const policy: FallbackPolicy = {
    ...DEFAULT_POLICY,
    ...options.policy,
    order: options.transports?.length ? options.transports : DEFAULT_POLICY.order,
  };
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const random = options.random ?? Math.random;
  const timers = options.timers ?? GLOBAL_TIMERS;
  const { setTimeout: schedule, clearTimeout: cancel } = timers;
  const connectTimeoutMs = options.connectTimeoutMs ?? 8000;
  const activityIntervalMs = options.activityIntervalMs ?? 60_000;
  const runtime: TransportRuntime = {
    WebSocket: options.WebSocket,
    EventSource: options.EventSource,
    fetch: options.fetch ?? ((input, init) => fetch(input, init)),
  };
  const factories = { ...FACTORIES, ...options.transportFactories };
  const http = createHttp({ baseUrl, token: options.token, fetch: runtime.fetch });
  const seen = createSeenIds(options.dedupCapacity ?? 2000);
  const link = createActions({
    http,
    sendFrame,
    user: () => user,
    ackMemory: options.dedupCapacity ?? 2000,
  });
  const { on, emit } = createEmitter<RelaisEvents>();
  const liveness = createLiveness({
    timers,
    ping: () => {
      if (kind === "ws") transport?.send({ type: "ping" });
    },
    dead: () => abandon({ code: 1006, reason: "No heartbeat from the server" }),
  });

  let state: ConnectionState = "idle";
  let fallback: FallbackState = initialFallback();
  let transport: Transport | undefined;
  let kind: TransportKind | undefined;
  let welcomedAt: number | undefined;
  let position = options.after;
  let epoch = options.epoch;
  let session: string | undefined;
  let user: string | undefined;
  let presence: "online" | "away" = "online";
  let lastActivitySent = 0;
  let welcomeTimer: unknown;
  let retryTimer: unknown;
  let unwatch: (() => void) | undefined;

  function setState(next: ConnectionState, change: Omit<StatusChange, "state"> = {}) {
    state = next;
    emit("status", { state: next, ...change });
  }

  const auth: TransportAuth = {
    headers: http.headers,
    async ticket() {
      return (await http.request<{ ticket: string }>("POST", "/v1/connect-tickets")).ticket;
    },
    async hello() {
      const token = (await http.headers()).authorization?.slice("Bearer ".length);
      return token ? { token } : { ticket: await auth.ticket() };
    },
  };

  function advance(seq: number) {
    if (position === undefined || seq > position) position = seq;
  }

  function clearTimers() {
    cancel(welcomeTimer);
    liveness.stop();
    cancel(retryTimer);
  }

  function open() {
    clearTimers();
    const current = currentTransport(fallback, policy);
    const resumedFrom = position;
    kind = current;
    welcomedAt = undefined;
    session = undefined;
    // Events of a transport that was replaced since are ignored. A factory never reports
    // during its own call, so `self` is set before any event reads it.
    const events: TransportEvents = {
      frame: (frame, pos) => self === transport && onFrame(frame, pos, resumedFrom),
      advance: (pos, posEpoch) => {
        if (self !== transport) return;
        liveness.heard();
        advance(pos);
        if (posEpoch !== undefined) epoch = posEpoch;
      },
      closed: (info) => self === transport && ended(info),
    };
    setState("connecting", { transport: current });
    const self: Transport = transport = factories[current]({
      baseUrl,
      after: position,
      ...(position !== undefined && epoch !== undefined ? { epoch } : {}),
      position: () => position,
      auth,
      events,
      runtime,
      pollTimeoutMs: options.pollTimeoutMs ?? 25_000,
    });
    welcomeTimer = schedule(
      () => abandon({ code: 1006, reason: "No welcome in time" }),
      connectTimeoutMs,
    );
  }

  /** Ends the current transport from this side, then decides like for any close. */
  function abandon(info: CloseInfo) {
    const t = transport;
    if (!t) return;
    t.close();
    ended(info);
  }

  function ended(info: CloseInfo) {
    transport = undefined;
    session = undefined;
    clearTimers();
    if (state === "closed" || state === "offline") return;
    const at = Date.now();
    const result = decide(fallback, {
      welcomed: welcomedAt !== undefined,
      code: info.code,
      openForMs: welcomedAt === undefined ? 0 : at - welcomedAt,
      retryAfterMs: info.retryAfterMs,
      at,
    }, policy);
    fallback = result.state;
    const { decision } = result;
    const cause = { code: info.code, reason: info.reason };
    if (decision.kind === "dormant") {
      setState("dormant", { transport: kind, ...cause });
      // No connection until the user is active: messages waiting for an answer go over HTTP.
      return link.resume();
    }
    if (decision.kind === "stop") {
      setState("closed", { transport: kind, ...cause, reason: decision.reason });
      return link.stop(decision.reason);
    }
    const delayMs = Math.max(
      decision.minDelayMs ?? 0,
      backoffDelay(decision.attempt, backoff, random),
    );
    setState("reconnecting", { transport: decision.transport, delayMs, ...cause });
    retryTimer = schedule(open, delayMs);
  }

  function onFrame(frame: ServerFrame, pos: number | undefined, resumedFrom: number | undefined) {
    liveness.heard();
    if (pos !== undefined) advance(pos);
    switch (frame.type) {
      case "welcome": {
        cancel(welcomeTimer);
        welcomedAt = Date.now();
        fallback = welcomed(fallback);
        session = frame.session;
        user = frame.user;
        // The position is from now on one of this epoch (a resume the server could not
        // serve in full is told by `recovered`).
        epoch = frame.epoch;
        const lost = resumedFrom !== undefined && !frame.recovered;
        if (position === undefined || lost) position = Math.max(position ?? 0, frame.seq);
        // A poll guards itself: each request has a deadline.
        if (kind !== "poll") liveness.start(frame.heartbeat_ms ?? 25_000);
        setState("open", { transport: kind });
        // Messages the last connection did not answer go again before anything new.
        link.resume();
        emit("welcome", frame);
        if (lost) emit("resync", { seq: frame.seq });
        if (presence === "away") void setPresence("away").catch(() => {});
        break;
      }
      case "event":
      case "update":
        advance(frame.seq);
        // A delivery of an item the application acked means the ack did not take.
        link.delivered(frame.envelope.metadata.id);
        if (seen.check(`${frame.type}:${frame.envelope.metadata.id}`)) return;
        (emit as (type: string, value: unknown) => void)(frame.type, frame);
        break;
      case "batch":
        // Grouped LOW items: each one is handed over like a frame of its own.
        for (const item of frame.items) onFrame(item, undefined, resumedFrom);
        return;
      case "msg": {
        if (frame.stream_seq !== undefined) advance(frame.stream_seq);
        // Before the duplicate check: a resend's answer is the stored message again.
        link.answer(frame);
        // A msg frame is the current state of a message: an edit is a new version.
        const version = `${frame.edited_at ?? ""}:${frame.deleted ? "deleted" : ""}`;
        if (seen.check(`msg:${frame.id ?? `${frame.conversation}:${frame.seq}`}:${version}`)) {
          return;
        }
        emit("msg", frame);
        break;
      }
      case "ping":
        transport?.send({ type: "pong" });
        return;
      case "pong":
      case "close":
        // A close is reported by the transport itself.
        return;
      case "error":
        if (link.answer(frame)) return;
        emit("error", frame);
        break;
      case "receipt":
      case "typing":
      case "presence":
      case "summary":
      case "control":
        (emit as (type: string, value: unknown) => void)(frame.type, frame);
        break;
    }
    emit("frame", frame);
  }

  function sendFrame(frame: ClientFrame): boolean {
    return transport?.kind === "ws" && welcomedAt !== undefined && transport.send(frame);
  }

  async function setPresence(status: "online" | "away") {
    presence = status;
    if (status === "online") lastActivitySent = Date.now();
    if (sendFrame({ type: "presence.set", status })) return;
    if (!session) return;
    await http.request("POST", "/v1/me/presence", { status, session });
  }

  function activity() {
    if (state === "dormant") {
      fallback = { ...fallback, failures: 0 };
      return open();
    }
    if (state !== "open") return;
    if (presence === "away" || Date.now() - lastActivitySent >= activityIntervalMs) {
      void setPresence("online").catch(() => {});
    }
  }

  const browser = {
    online() {
      if (state !== "offline") return;
      fallback = { ...fallback, failures: 0 };
      open();
    },
    offline() {
      if (state === "closed" || state === "idle" || state === "offline") return;
      const t = transport;
      transport = undefined;
      t?.close();
      clearTimers();
      setState("offline", { transport: kind });
    },
    hidden() {
      if (state === "open") void setPresence("away").catch(() => {});
    },
    activity,
  };

  return {
    get state() {
      return state;
    },
    get transport() {
      return kind;
    },
    get session() {
      return session;
    },
    get position() {
      return position;
    },
    get epoch() {
      return epoch;
    },
    get user() {
      return user;
    },
    on,
    connect() {
      if (state === "connecting" || state === "open" || state === "reconnecting") return;
      if (state === "closed") fallback = initialFallback();
      unwatch ??= options.watchBrowser === false ? () => {} : watchBrowser(browser);
      open();
    },
    close() {
      const t = transport;
      transport = undefined;
      clearTimers();
      t?.close();
      unwatch?.();
      unwatch = undefined;
      if (state !== "closed") setState("closed", { transport: kind });
      link.stop("the client was closed");
    },
    activity,
    setPresence,
    ...link.actions,
    ...createPushActions({ http, baseUrl }),
  };
}
