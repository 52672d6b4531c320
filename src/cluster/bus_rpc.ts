/**
 * Request and response between nodes over the cluster bus: a node calls a named method on
 * another node and gets its answer, or its error, back.
 *
 * Each node reads two topics of its own: `<prefix>:req:<node>` (calls addressed to it) and
 * `<prefix>:res:<node>` (answers to its calls); every other node's traffic stays in topics
 * it never subscribes to. A call carries an id, matched with its answer on the way back.
 * A call ends with an answer, an error, or a {@linkcode NodeUnreachableError} when the
 * node does not answer in time or leaves the cluster (its heartbeats stop) while the
 * caller waits.
 *
 * An {@linkcode AppError} thrown by a handler crosses with its code, message, details and
 * retry delay, so a `not_found` on the node that handled the call is a `not_found` for
 * the caller too; any other error arrives as a plain `Error` naming the method and node.
 *
 * What comes from the bus is input like any other: the payload is parsed defensively and
 * method names and ids are only ever looked up in maps.
 *
 * @module
 */

import { AppError, ERROR_STATUS, type ErrorCode } from "../errors.ts";
import type { Bus, BusMessage } from "./bus.ts";

/** What answers the calls of one method; `args` is what the caller passed, JSON-decoded. */
export type RpcHandler = (args: unknown) => Promise<unknown>;

/**
 * A call that got no answer: the node did not answer within the timeout, or left the
 * cluster before answering. Whether the call had an effect there is unknown.
 */
export class NodeUnreachableError extends AppError {
  /** The node that was called. */
  readonly node: string;

  constructor(node: string, message: string) {
    super("unavailable", message);
    this.name = "NodeUnreachableError";
    this.node = node;
  }
}

/** Options of {@linkcode createBusRpc}. */
export interface BusRpcOptions {
  /** How long a call waits for its answer, ms (default 10,000). */
  timeoutMs?: number;
  /**
   * Between two checks, while calls wait, that their nodes are still alive (default
   * 1000 ms): a call to a node that left fails then rather than at its timeout.
   */
  livenessMs?: number;
  /** The topics' prefix, to keep several RPC layers apart on one bus (default `rpc`). */
  prefix?: string;
  /** Told about bad messages, handler failures and answers that could not be sent. */
  onError?(message: string, error: unknown): void;
}

/** Calls to other nodes, and this node's handlers for theirs. */
export interface BusRpc {
  /** This node's id. */
  readonly node: string;
  /** Answers the calls of `method` with `fn`, until the returned function is called. */
  handle(method: string, fn: RpcHandler): () => void;
  /**
   * Calls `method` on `node` with `args` (JSON-encoded) and resolves with its answer. A
   * call to this node runs its handler in process.
   */
  call(
    node: string,
    method: string,
    args: unknown,
    options?: { timeoutMs?: number },
  ): Promise<unknown>;
  /** Stops answering and fails the calls still waiting. */
  close(): void;
}

/** An error as it crosses the bus. */
interface WireError {
  code?: string;
  message: string;
  details?: unknown;
  retryAfterMs?: number;
}

interface Pending {
  node: string;
  method: string;
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

// Bounds what a hostile or broken message can make this node hold or log.
const MAX_ID_LENGTH = 200;
const clip = (s: string) => (s.length > 100 ? `${s.slice(0, 100)}…` : s);

function parse(data: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(data);
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? value as Record<string, unknown>
      : undefined;
  } catch {
    return undefined;
  }
}

const isId = (v: unknown): v is string =>
  typeof v === "string" && v.length > 0 && v.length <= MAX_ID_LENGTH;

function toWire(error: unknown): WireError {
  if (error instanceof AppError) {
    return {
      code: error.code,
      message: error.message,
      ...(error.details === undefined ? {} : { details: error.details }),
      ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }),
    };
  }
  return { message: error instanceof Error ? error.message : String(error) };
}

function fromWire(raw: unknown, method: string, node: string): Error {
  const e = typeof raw === "object" && raw !== null ? raw as Record<string, unknown> : {};
  const message = typeof e.message === "string" ? e.message : "no message";
  const code = e.code;
  if (typeof code === "string" && Object.hasOwn(ERROR_STATUS, code)) {
    const retryAfterMs = typeof e.retryAfterMs === "number" ? e.retryAfterMs : undefined;
    return new AppError(code as ErrorCode, message, {
      ...(e.details === undefined ? {} : { details: e.details }),
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }
  return new Error(`Call "${clip(method)}" on node "${clip(node)}" failed: ${message}`);
}

/**
 * Creates the RPC layer of `bus`'s node and starts answering its calls.
 *
 * @example
 * ```ts
 * const rpc = createBusRpc(bus, { timeoutMs: 5000 });
 * rpc.handle("echo", (args) => Promise.resolve(args));
 * const answer = await rpc.call("node-b", "echo", { hello: 1 });
 * ```
 */
export function createBusRpc(bus: Bus, options: BusRpcOptions = {}): BusRpc {
  const node = bus.node;
  const prefix = options.prefix ?? "rpc";
  const defaultTimeoutMs = options.timeoutMs ?? 10_000;
  const livenessMs = options.livenessMs ?? 1000;
  const onError = options.onError ?? (() => {});
  const requestTopic = (n: string) => `${prefix}:req:${n}`;
  const replyTopic = (n: string) => `${prefix}:res:${n}`;
  const handlers = new Map<string, RpcHandler>();
  const pending = new Map<string, Pending>();
  let closed = false;
  let liveness: ReturnType<typeof setTimeout> | undefined;

  function settle(id: string): Pending | undefined {
    const entry = pending.get(id);
    if (!entry) return undefined;
    pending.delete(id);
    clearTimeout(entry.timer);
    return entry;
  }

  /** Fails the waiting calls whose node has left; runs only while calls wait. */
  function watch() {
    if (liveness !== undefined || pending.size === 0 || closed) return;
    liveness = setTimeout(async () => {
      try {
        const alive = new Set((await bus.nodes()).map((n) => n.id));
        for (const [id, entry] of pending) {
          if (alive.has(entry.node)) continue;
          settle(id)?.reject(
            new NodeUnreachableError(
              entry.node,
              `Node "${clip(entry.node)}" left the cluster before answering "${
                clip(entry.method)
              }"`,
            ),
          );
        }
      } catch {
        // Membership is out of reach for now: the calls' timeouts still apply.
      } finally {
        liveness = undefined;
        watch();
      }
    }, livenessMs);
  }

  function invoke(method: string, args: unknown): Promise<unknown> {
    const fn = handlers.get(method);
    if (!fn) return Promise.reject(new Error(`Unknown method "${clip(method)}"`));
    // A handler that throws at once fails its call like one that rejects.
    return Promise.resolve().then(() => fn(args));
  }

  function onRequest(message: BusMessage) {
    const request = parse(message.data);
    const from = message.from;
    if (!request || !isId(request.id) || typeof request.method !== "string" || !from) {
      onError("A malformed call came over the bus", new Error(message.data.slice(0, 200)));
      return;
    }
    const id = request.id;
    const method = request.method;
    invoke(method, request.args).then(
      (value) => ({ id, ok: true, value }),
      (error) => {
        if (!(error instanceof AppError)) {
          onError(`Call "${clip(method)}" from node "${clip(from)}" failed`, error);
        }
        return { id, ok: false, error: toWire(error) };
      },
    ).then((reply) => {
      if (closed) return;
      let data: string;
      try {
        data = JSON.stringify(reply);
      } catch (error) {
        data = JSON.stringify({ id, ok: false, error: toWire(error) });
      }
      return bus.publish(replyTopic(from), data);
    }).catch((error) =>
      onError(`Cannot answer call "${clip(method)}" of node "${clip(from)}"`, error)
    );
  }

  function onReply(message: BusMessage) {
    const reply = parse(message.data);
    if (!reply || !isId(reply.id)) {
      onError("A malformed answer came over the bus", new Error(message.data.slice(0, 200)));
      return;
    }
    // An answer that comes after its call timed out, or that is no one's, is dropped.
    const entry = settle(reply.id);
    if (!entry) return;
    if (reply.ok === true) entry.resolve(reply.value);
    else entry.reject(fromWire(reply.error, entry.method, entry.node));
  }

  const unsubscribe = [
    bus.subscribe(requestTopic(node), onRequest),
    bus.subscribe(replyTopic(node), onReply),
  ];

  return {
    node,
    handle(method, fn) {
      handlers.set(method, fn);
      return () => {
        if (handlers.get(method) === fn) handlers.delete(method);
      };
    },
    call(target, method, args, callOptions = {}) {
      if (closed) return Promise.reject(new Error("The bus RPC is closed"));
      if (target === node) return invoke(method, args);
      const timeoutMs = callOptions.timeoutMs ?? defaultTimeoutMs;
      const id = crypto.randomUUID();
      let data: string;
      try {
        data = JSON.stringify({ id, method, args });
      } catch (error) {
        return Promise.reject(error);
      }
      return new Promise<unknown>((resolve, reject) => {
        const timer = setTimeout(() => {
          settle(id)?.reject(
            new NodeUnreachableError(
              target,
              `Node "${clip(target)}" did not answer "${clip(method)}" within ${timeoutMs} ms`,
            ),
          );
        }, timeoutMs);
        pending.set(id, { node: target, method, resolve, reject, timer });
        watch();
        bus.publish(requestTopic(target), data).catch((error) => {
          settle(id)?.reject(
            new AppError(
              "unavailable",
              `Cannot call "${clip(method)}" on node "${clip(target)}": the bus refused it`,
              { cause: error },
            ),
          );
        });
      });
    },
    close() {
      if (closed) return;
      closed = true;
      for (const stop of unsubscribe) stop();
      clearTimeout(liveness);
      for (const id of [...pending.keys()]) {
        settle(id)?.reject(new Error("The bus RPC is closed"));
      }
      handlers.clear();
    },
  };
}
