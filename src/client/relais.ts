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

import { backoffDelay, type BackoffOptions, DEFAULT_BACKOFF } from "./backoff.ts";
import { createSeenIds } from "./dedup.ts";
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
import { openPoll } from "./poll_transport.ts";
import { openEventSource } from "./sse_transport.ts";
import type {
  CloseInfo,
  EventSourceConstructor,
  Transport,
  TransportAuth,
  TransportEvents,
  TransportFactory,
  TransportRuntime,
  WebSocketConstructor,
} from "./transport.ts";
import type {
  ClientFrame,
  ErrorFrame,
  EventFrame,
  FrameOf,
  ServerFrame,
  TransportKind,
  WelcomeFrame,
} from "./types.ts";
import { openWebSocket } from "./ws_transport.ts";

export { backoffDelay, type BackoffOptions } from "./backoff.ts";
export { decide, type Decision, type FallbackPolicy, type Outcome } from "./fallback.ts";
export { HttpError } from "./transport.ts";
export type { CloseInfo, Transport, TransportContext, TransportFactory } from "./transport.ts";
export type * from "./types.ts";

/** Where the connection stands. */
export type ConnectionState =
  /** Not connected yet: call `connect()`. */
  | "idle"
  /** Opening a transport. */
  | "connecting"
  /** Welcomed: frames flow. */
  | "open"
  /** Lost or refused: waiting `delayMs` before the next try. */
  | "reconnecting"
  /** Closed by the server for inactivity: reconnects on the next user activity. */
  | "dormant"
  /** The browser is offline: reconnects when it is back online. */
  | "offline"
  /** Closed by `close()`, or the server refused the credentials for good. */
  | "closed";

/** A change of connection state. */
export interface StatusChange {
  state: ConnectionState;
  transport?: TransportKind;
  /** Before the next try, when reconnecting. */
  delayMs?: number;
  /** The close code that caused the change, if any. */
  code?: number;
  reason?: string;
}

/** The events a client emits, by name. */
export interface RelaisEvents {
  status: StatusChange;
  welcome: WelcomeFrame;
  /** A stream item (notification, system or reactive-UI event), once per id. */
  event: EventFrame;
  /** A newer unread item replaced an older one with the same collapse key. */
  update: FrameOf<"update">;
  /** The push budget was spent: items are in the stream but were not pushed; list the inbox. */
  summary: FrameOf<"summary">;
  /** Which features are switched on for the user (kill switches). */
  control: FrameOf<"control">;
  /** A chat message (new, edited or deleted), once per id and version. */
  msg: FrameOf<"msg">;
  receipt: FrameOf<"receipt">;
  typing: FrameOf<"typing">;
  presence: FrameOf<"presence">;
  error: ErrorFrame;
  /** A resume could not be served in full: refetch what the UI shows. */
  resync: { seq: number };
  /** Every frame given to the application, whatever its type (after de-duplication). */
  frame: ServerFrame;
}

/**
 * The timer functions the client schedules with: its reconnections, the welcome deadline
 * and the liveness checks. They are called as plain functions, without a `this`.
 */
export interface RelaisTimers {
  /** Calls `callback` once, `ms` from now; answers a handle for `clearTimeout`. */
  setTimeout(callback: () => void, ms: number): unknown;
  /** Cancels a timer by the handle `setTimeout` answered (`undefined` is ignored). */
  clearTimeout(handle: unknown): void;
}

/** The runtime's own timers. */
const GLOBAL_TIMERS: RelaisTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout> | undefined),
};

/** Options of {@linkcode createRelais}. */
export interface RelaisOptions {
  /** Base URL of relais; the page's origin by default in a browser. */
  url?: string;
  /**
   * The user's JWT, or a function returning a fresh one (called at each connection).
   * Without one, requests rely on cookies or an API gateway, and sockets on tickets.
   */
  token?: string | (() => string | Promise<string>);
  /** Transports in order of preference (default `["ws", "sse", "poll"]`). */
  transports?: TransportKind[];
  /** Start after this stream position (e.g. the inbox's newest seq) instead of now. */
  after?: number;
  /** The epoch of `after`, when it came from a `welcome` (`relais.epoch`). */
  epoch?: string;
  /** How long a transport may take to be welcomed before it counts as failed (8 s). */
  connectTimeoutMs?: number;
  /** How long a poll waits on the server (25 s). */
  pollTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** Overrides of the fallback policy (failures before fallback, probe delay…). */
  policy?: Partial<Omit<FallbackPolicy, "order">>;
  /** Listen to the browser's online/offline, visibility and input events (default true). */
  watchBrowser?: boolean;
  /** Activity is reported to the server at most this often, keeping it from idling (60 s). */
  activityIntervalMs?: number;
  /** How many ids are remembered to drop duplicates (2000). */
  dedupCapacity?: number;
  /** Runtime constructors (tests, other runtimes). */
  WebSocket?: WebSocketConstructor;
  EventSource?: EventSourceConstructor;
  fetch?: typeof fetch;
  /** Replaces transports (tests). */
  transportFactories?: Partial<Record<TransportKind, TransportFactory>>;
  /** Random source of the jitter (tests). */
  random?: () => number;
  /** The timers to schedule with (tests); the runtime's own by default. */
  timers?: RelaisTimers;
}

/** A query of the inbox. */
export interface InboxQuery {
  after?: number;
  limit?: number;
  unread?: boolean;
}

/** A connection to relais and the user's actions. */
export interface RelaisClient {
  readonly state: ConnectionState;
  /** The transport in use or being tried. */
  readonly transport: TransportKind | undefined;
  /** The current connection's id (`welcome.session`). */
  readonly session: string | undefined;
  /** The user's stream position reached; sent as `after` on reconnection. */
  readonly position: number | undefined;
  /** The epoch of `position` (from `welcome` and poll answers); sent back with it. */
  readonly epoch: string | undefined;
  /** The user id the server welcomed. */
  readonly user: string | undefined;
  /** Listens to an event; returns a function that stops listening. */
  on<K extends keyof RelaisEvents>(type: K, listener: (value: RelaisEvents[K]) => void): () => void;
  /** Connects (again, after `close()` or when dormant). */
  connect(): void;
  /** Closes the connection and stops reconnecting. */
  close(): void;
  /** Tells the client the user is active: wakes a dormant client, keeps presence online. */
  activity(): void;
  /** Acknowledges an item (over the WebSocket when open, else over HTTP). */
  ack(id: string): Promise<void>;
  /** Marks an inbox item read. */
  read(id: string): Promise<void>;
  /** Marks every inbox item read; resolves with how many were. */
  readAll(): Promise<number>;
  /** A page of the inbox. */
  notifications(query?: InboxQuery): Promise<InboxPage>;
  /** Sets this connection's presence (online / away). */
  setPresence(status: "online" | "away"): Promise<void>;
  /** Sends a chat message; resolves with its `client_id` (a resend with it is idempotent). */
  send(conversation: string, text: string, options?: { clientId?: string }): Promise<string>;
  /** Says the user is typing in a conversation (throttled to one signal every 3 s). */
  typing(conversation: string): Promise<void>;
  /** Marks a conversation read up to `seq` (sends a receipt). */
  readConversation(conversation: string, seq: number): Promise<void>;
  /** The user's conversations. */
  conversations<T = unknown>(): Promise<T>;
  /** A page of a conversation's history, newest first. */
  messages<T = unknown>(
    conversation: string,
    query?: { before?: number; limit?: number },
  ): Promise<T>;
  /** Any relais API call with the client's credentials. */
  request<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
}

/** An inbox item as `GET /v1/me/notifications` lists it. */
export interface InboxItem {
  seq: number;
  id: string;
  metadata: EventFrame["envelope"]["metadata"];
  payload: EventFrame["envelope"]["payload"];
  read: boolean;
  read_at?: string;
  ack_required: boolean;
}

/** A page of the inbox. */
export interface InboxPage {
  items: InboxItem[];
  unread_count: number;
  next?: number;
}

/** What the SDK uses of a browser's `window` and `document` (no DOM types needed). */
interface EventTargetLike {
  addEventListener(type: string, listener: () => void, options?: { passive: boolean }): void;
  removeEventListener(type: string, listener: () => void): void;
}
interface DocumentLike extends EventTargetLike {
  visibilityState: string;
}

const FACTORIES: Record<TransportKind, TransportFactory> = {
  ws: openWebSocket,
  sse: openEventSource,
  poll: openPoll,
};

function uuid(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // Pages served over plain HTTP (not localhost) have no randomUUID.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

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
  const { setTimeout: schedule, clearTimeout: cancel } = options.timers ?? GLOBAL_TIMERS;
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
  const listeners = new Map<string, Set<(value: never) => void>>();

  let state: ConnectionState = "idle";
  let fallback: FallbackState = initialFallback();
  let transport: Transport | undefined;
  let kind: TransportKind | undefined;
  let welcomedAt: number | undefined;
  let position = options.after;
  let epoch = options.epoch;
  let session: string | undefined;
  let user: string | undefined;
  let heartbeatMs = 25_000;
  let lastReceived = 0;
  let pinged = false;
  let presence: "online" | "away" = "online";
  let lastActivitySent = 0;
  const typingSent = new Map<string, number>();
  let welcomeTimer: unknown;
  let livenessTimer: unknown;
  let retryTimer: unknown;
  let unwatch: (() => void) | undefined;

  function emit<K extends keyof RelaisEvents>(type: K, value: RelaisEvents[K]) {
    for (const listener of [...(listeners.get(type) ?? [])]) {
      try {
        (listener as (v: RelaisEvents[K]) => void)(value);
      } catch (error) {
        // One failing listener must not break the stream for the others.
        console.error(`relais: a "${type}" listener failed`, error);
      }
    }
  }

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
    cancel(livenessTimer);
    cancel(retryTimer);
  }

  function open() {
    clearTimers();
    const current = currentTransport(fallback, policy);
    const resumedFrom = position;
    kind = current;
    welcomedAt = undefined;
    session = undefined;
    pinged = false;
    // Events of a transport that was replaced since are ignored. A factory never reports
    // during its own call, so `self` is set before any event reads it.
    const events: TransportEvents = {
      frame: (frame, pos) => self === transport && onFrame(frame, pos, resumedFrom),
      advance: (pos, posEpoch) => {
        if (self !== transport) return;
        lastReceived = Date.now();
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
    if (decision.kind === "dormant") return setState("dormant", { transport: kind, ...cause });
    if (decision.kind === "stop") {
      return setState("closed", { transport: kind, ...cause, reason: decision.reason });
    }
    const delayMs = Math.max(
      decision.minDelayMs ?? 0,
      backoffDelay(decision.attempt, backoff, random),
    );
    setState("reconnecting", { transport: decision.transport, delayMs, ...cause });
    retryTimer = schedule(open, delayMs);
  }

  function startLiveness() {
    cancel(livenessTimer);
    // A poll guards itself: each request has a deadline.
    if (kind === "poll") return;
    const grace = Math.min(heartbeatMs, 5000);
    const check = () => {
      const silent = Date.now() - lastReceived;
      if (silent >= 2 * heartbeatMs + grace) {
        return abandon({ code: 1006, reason: "No heartbeat from the server" });
      }
      if (silent >= heartbeatMs && !pinged && kind === "ws") {
        pinged = true;
        transport?.send({ type: "ping" });
      }
      livenessTimer = schedule(check, Math.max(100, heartbeatMs / 2));
    };
    livenessTimer = schedule(check, Math.max(100, heartbeatMs / 2));
  }

  function onFrame(frame: ServerFrame, pos: number | undefined, resumedFrom: number | undefined) {
    lastReceived = Date.now();
    pinged = false;
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
        heartbeatMs = frame.heartbeat_ms ?? 25_000;
        const lost = resumedFrom !== undefined && !frame.recovered;
        if (position === undefined || lost) position = Math.max(position ?? 0, frame.seq);
        startLiveness();
        setState("open", { transport: kind });
        emit("welcome", frame);
        if (lost) emit("resync", { seq: frame.seq });
        if (presence === "away") void setPresence("away").catch(() => {});
        break;
      }
      case "event":
      case "update":
        advance(frame.seq);
        if (seen.check(`${frame.type}:${frame.envelope.metadata.id}`)) return;
        (emit as (type: string, value: unknown) => void)(frame.type, frame);
        break;
      case "batch":
        // Grouped LOW items: each one is handed over like a frame of its own.
        for (const item of frame.items) onFrame(item, undefined, resumedFrom);
        return;
      case "msg": {
        if (frame.stream_seq !== undefined) advance(frame.stream_seq);
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
      case "receipt":
      case "typing":
      case "presence":
      case "error":
      case "summary":
      case "control":
        (emit as (type: string, value: unknown) => void)(frame.type, frame);
        break;
    }
    emit("frame", frame);
  }

  function wsOpen(): boolean {
    return transport?.kind === "ws" && welcomedAt !== undefined;
  }

  function sendFrame(frame: ClientFrame): boolean {
    return wsOpen() && transport!.send(frame);
  }

  const path = (s: string) => encodeURIComponent(s);

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

  function watchBrowser(): () => void {
    const doc = (globalThis as { document?: DocumentLike }).document;
    if (!doc || options.watchBrowser === false) return () => {};
    const win = globalThis as unknown as EventTargetLike;
    let lastInput = 0;
    const onOnline = () => {
      if (state !== "offline") return;
      fallback = { ...fallback, failures: 0 };
      open();
    };
    const onOffline = () => {
      if (state === "closed" || state === "idle" || state === "offline") return;
      const t = transport;
      transport = undefined;
      t?.close();
      clearTimers();
      setState("offline", { transport: kind });
    };
    const onVisibility = () => {
      if (doc.visibilityState === "visible") activity();
      else if (state === "open") void setPresence("away").catch(() => {});
    };
    const onInput = () => {
      // Input events come in bursts: look at one per second at most.
      const now = Date.now();
      if (now - lastInput < 1000) return;
      lastInput = now;
      activity();
    };
    win.addEventListener("online", onOnline);
    win.addEventListener("offline", onOffline);
    doc.addEventListener("visibilitychange", onVisibility);
    doc.addEventListener("pointerdown", onInput, { passive: true });
    doc.addEventListener("keydown", onInput, { passive: true });
    return () => {
      win.removeEventListener("online", onOnline);
      win.removeEventListener("offline", onOffline);
      doc.removeEventListener("visibilitychange", onVisibility);
      doc.removeEventListener("pointerdown", onInput);
      doc.removeEventListener("keydown", onInput);
    };
  }

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
    on(type, listener) {
      let set = listeners.get(type);
      if (!set) listeners.set(type, set = new Set());
      set.add(listener as (value: never) => void);
      return () => void set.delete(listener as (value: never) => void);
    },
    connect() {
      if (state === "connecting" || state === "open" || state === "reconnecting") return;
      if (state === "closed") fallback = initialFallback();
      unwatch ??= watchBrowser();
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
    },
    activity,
    async ack(id) {
      if (sendFrame({ type: "ack", id })) return;
      await http.request("POST", `/v1/me/notifications/${path(id)}/ack`);
    },
    async read(id) {
      if (sendFrame({ type: "read", id })) return;
      await http.request("POST", `/v1/me/notifications/${path(id)}/read`);
    },
    async readAll() {
      return (await http.request<{ read: number }>("POST", "/v1/me/notifications/read-all")).read;
    },
    notifications(query = {}) {
      const q = new URLSearchParams();
      if (query.after !== undefined) q.set("after", String(query.after));
      if (query.limit !== undefined) q.set("limit", String(query.limit));
      if (query.unread) q.set("unread", "true");
      return http.request<InboxPage>("GET", `/v1/me/notifications${q.size ? `?${q}` : ""}`);
    },
    setPresence,
    async send(conversation, text, opts = {}) {
      const clientId = opts.clientId ?? uuid();
      if (sendFrame({ type: "msg.send", conversation, text, client_id: clientId })) return clientId;
      await http.request("POST", `/v1/conversations/${path(conversation)}/messages`, {
        text,
        client_id: clientId,
      });
      return clientId;
    },
    async typing(conversation) {
      const now = Date.now();
      if (now - (typingSent.get(conversation) ?? 0) < 3000) return;
      typingSent.set(conversation, now);
      if (sendFrame({ type: "typing", conversation })) return;
      await http.request("POST", `/v1/conversations/${path(conversation)}/typing`);
    },
    async readConversation(conversation, seq) {
      if (sendFrame({ type: "read", conversation, seq })) return;
      await http.request("POST", `/v1/conversations/${path(conversation)}/read`, { seq });
    },
    conversations: <T>() => http.request<T>("GET", "/v1/me/conversations"),
    messages<T>(conversation: string, query: { before?: number; limit?: number } = {}) {
      const q = new URLSearchParams();
      if (query.before !== undefined) q.set("before", String(query.before));
      if (query.limit !== undefined) q.set("limit", String(query.limit));
      return http.request<T>(
        "GET",
        `/v1/conversations/${path(conversation)}/messages${q.size ? `?${q}` : ""}`,
      );
    },
    request: (method, p, body) => http.request(method, p, body),
  };
}
