/**
 * The public shapes of the SDK client: its connection states, the events it emits, its
 * options and the methods it offers.
 */

import type { BackoffOptions } from "./backoff.ts";
import type { FallbackPolicy } from "./fallback.ts";
import type { PushActions } from "./push.ts";
import type {
  EventSourceConstructor,
  TransportFactory,
  WebSocketConstructor,
} from "./transport.ts";
import type {
  ErrorFrame,
  EventFrame,
  FrameOf,
  ServerFrame,
  TransportKind,
  WelcomeFrame,
} from "./types.ts";

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
export interface RelaisClient extends PushActions {
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
  /**
   * Acknowledges an item. Over HTTP (no WebSocket open) it resolves once the server recorded
   * the ack. Over the WebSocket it resolves once the frame is handed to the socket (the server
   * answers no success); an ack the server did not act on is not lost: the server delivers an
   * unacked item again, and the client answers each delivery of an id acked here (among the
   * last `dedupCapacity`) with the ack again, without handing the duplicate over.
   */
  ack(id: string): Promise<void>;
  /**
   * Marks an inbox item read. Over the WebSocket it resolves once the frame is sent: a read
   * lost with its connection leaves the item unread, as the next inbox page shows.
   */
  read(id: string): Promise<void>;
  /** Marks every inbox item read; resolves with how many were. */
  readAll(): Promise<number>;
  /** A page of the inbox. */
  notifications(query?: InboxQuery): Promise<InboxPage>;
  /** Sets this connection's presence (online / away). */
  setPresence(status: "online" | "away"): Promise<void>;
  /**
   * Sends a chat message; resolves with its `client_id` (a resend with it is idempotent) once
   * the message is stored: over HTTP, the answer; over the WebSocket, the sender's own `msg`
   * frame. Rejects with the server's refusal: an `HttpError`, or an `ActionError` with the
   * `error` frame's code (`rate_limited`, `not_found`, `not_member`…). A connection lost
   * before the answer sends it again on the next one with the same `client_id`, up to three
   * connections (then `ActionError` `connection_lost`); `close()` rejects it (`closed`).
   */
  send(conversation: string, text: string, options?: { clientId?: string }): Promise<string>;
  /**
   * Says the user is typing in a conversation (throttled to one signal every 3 s); a signal
   * lost with its connection is not sent again (the next keystroke sends one).
   */
  typing(conversation: string): Promise<void>;
  /**
   * Marks a conversation read up to `seq` (sends a receipt). Over the WebSocket it resolves
   * once the frame is sent, like `read`.
   */
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
