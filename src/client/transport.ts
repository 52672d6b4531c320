/** What the client needs from a transport, whichever carries the frames. */

import type { ClientFrame, ServerFrame, TransportKind } from "./types.ts";

/** How a transport ended. */
export interface CloseInfo {
  /** WebSocket close code; SSE and poll use the same codes (HTTP statuses are mapped). */
  code: number;
  reason: string;
  retryAfterMs?: number;
}

/** What a transport reports to the client. */
export interface TransportEvents {
  /** A server frame, in order; `position` is a stream position the transport read beside it. */
  frame(frame: ServerFrame, position?: number): void;
  /**
   * The stream position the client has reached, and its epoch when the transport read one
   * (poll answers carry both).
   */
  advance(position: number, epoch?: string): void;
  /** The transport ended by itself (not after `close()`); called at most once. */
  closed(info: CloseInfo): void;
}

/** How a transport authenticates. */
export interface TransportAuth {
  /** Headers for an HTTP request (`Authorization` when the client has a token). */
  headers(): Promise<Record<string, string>>;
  /** A single-use connect ticket. */
  ticket(): Promise<string>;
  /** The credential for a WebSocket `hello`: the token, else a ticket. */
  hello(): Promise<{ token: string } | { ticket: string }>;
}

/** A WebSocket constructor, as the SDK calls it. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocket;
/** An EventSource constructor, as the SDK calls it. */
export type EventSourceConstructor = new (url: string) => EventSource;

/** The runtime's constructors, injectable for tests and other runtimes. */
export interface TransportRuntime {
  WebSocket?: WebSocketConstructor;
  EventSource?: EventSourceConstructor;
  fetch: typeof fetch;
}

/** What a transport is opened with. */
export interface TransportContext {
  /** Base URL of relais, without a trailing slash (`https://relais.example.org`). */
  baseUrl: string;
  /** Resume after this stream position. */
  after?: number;
  /** The epoch of `after` (the last `welcome.epoch`), sent back with it. */
  epoch?: string;
  /** The client's current stream position (a poll's next `after`). */
  position(): number | undefined;
  auth: TransportAuth;
  events: TransportEvents;
  runtime: TransportRuntime;
  /** How long a poll may wait on the server. */
  pollTimeoutMs: number;
}

/** An open (or opening) transport. */
export interface Transport {
  readonly kind: TransportKind;
  /** Sends a client frame; false when the transport carries none (SSE, poll use HTTP). */
  send(frame: ClientFrame): boolean;
  /** Closes without reporting `closed`. */
  close(): void;
}

/** Opens a transport of one kind; it reports through `context.events` only after returning. */
export type TransportFactory = (context: TransportContext) => Transport;

/** An HTTP failure, as the close code a WebSocket would have had. */
export function closeCodeForStatus(status: number): number {
  if (status === 401) return 4001;
  if (status === 403) return 4003;
  if (status === 429) return 4008;
  return 1006;
}

/** An error carrying an HTTP status (from a failed request). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "HttpError";
  }
}

/** The close info of an error thrown while opening a transport. */
export function closeInfoOf(error: unknown): CloseInfo {
  if (error instanceof HttpError) {
    return {
      code: closeCodeForStatus(error.status),
      reason: error.message,
      ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}),
    };
  }
  return { code: 1006, reason: error instanceof Error ? error.message : String(error) };
}

/** Parses a `Retry-After` header (seconds) into milliseconds. */
export function retryAfterMs(header: string | null): number | undefined {
  const seconds = header === null ? NaN : Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}
