/**
 * One live owner per actor across the cluster: which node runs the actors of one kind
 * (conversations, say), decided by their leases.
 *
 * A node owns an actor while it holds its lease; asked about an actor nobody holds, it
 * takes the lease and owns it from then on. A lease held by a node that left the cluster
 * (absent from `bus.nodes()`: its heartbeats stopped) keeps nobody waiting for long: it
 * lapses within the leases' ttl, and the next question takes it over, waiting for the
 * lapse when it is near. The same holds for a lease an earlier run of this node left
 * behind under the same node id: this run cannot renew it, and takes it once it lapses.
 *
 * One timer renews, once per `renewMs`, the leases in use and lets go of those unused
 * for `idleMs`; with no lease held, no timer runs. The owners of actors held elsewhere
 * are remembered until their leases' current expiry (at most `renewMs`), so most
 * questions need no read; a caller whose forwarded request went unanswered calls
 * {@linkcode Ownership.forget} before asking again.
 *
 * @module
 */

import { AppError } from "../errors.ts";
import type { Bus } from "./bus.ts";
import type { Lease, LeaseInfo, Leases } from "./leases.ts";

/** Where an actor lives: here, or on another node. */
export type Owner = { local: true } | { local: false; node: string };

/** Options of {@linkcode createOwnership}. */
export interface OwnershipOptions {
  leases: Leases;
  /** This node's id, and which nodes are alive. */
  bus: Pick<Bus, "node" | "nodes">;
  /** The actor kind whose leases these are, e.g. `"conversation"`. */
  kind: string;
  /** The ttl `leases` was created with, ms (default 10,000). */
  ttlMs?: number;
  /** Between two renewal passes, ms (default a third of `ttlMs`). */
  renewMs?: number;
  /**
   * A lease unused for this long is let go, ms (default 300,000). Make it at least the
   * actors' own idle time, so that an actor has passivated before its lease goes.
   */
  idleMs?: number;
  /** The clock, in milliseconds since the epoch (default `Date.now`); the leases' clock. */
  now?: () => number;
  onError(message: string, error: unknown): void;
}

/** The ownership of one kind of actor, seen from one node. */
export interface Ownership {
  /**
   * Who owns actor `id`: this node when it holds the lease or takes it now; otherwise the
   * live holder's node. Rejects with an `unavailable` {@linkcode AppError} when the holder
   * is gone and its lease does not lapse soon, or the leases are out of reach.
   */
  owner(id: string): Promise<Owner>;
  /** Marks the lease of `id`, if held here, as in use (it is not let go while in use). */
  touch(id: string): void;
  /**
   * Forgets where `id` was last seen held elsewhere (and which nodes were alive), so
   * that the next question reads them again.
   */
  forget(id: string): void;
  /** The lease of `id` when this node holds it (to fence a write with). */
  fenceOf(id: string): Lease | undefined;
  /** The ids whose leases this node holds. */
  held(): string[];
  /** One renewal pass now (the timer runs the same); resolves when it is done. */
  renewNow(): Promise<void>;
  /** Stops renewing and releases every lease held. */
  close(): Promise<void>;
}

/** Where an earlier question found the lease of an actor held elsewhere. */
interface Remote {
  node: string;
  /** Until when the answer may be reused. */
  until: number;
}

interface Held {
  lease: Lease;
  usedAt: number;
}

const LOCAL: Owner = Object.freeze({ local: true });
// How long one read of the live nodes is reused.
const NODES_REUSE_MS = 500;
// Renewals and releases in flight at once during a pass.
const CONCURRENCY = 16;
// Reads of a lease one question makes at most, through races and lapses.
const MAX_ROUNDS = 6;
// Actors held elsewhere remembered at most (oldest forgotten first).
const MAX_REMOTE = 10_000;

const clip = (id: string) => (id.length > 100 ? `${id.slice(0, 100)}…` : id);

/** Runs `tasks`, at most `limit` at a time. */
async function runLimited(tasks: (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) await tasks[next++]();
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
}

/**
 * Creates the ownership of actors of `kind` for this node.
 *
 * @example
 * ```ts
 * const ownership = createOwnership({ leases, bus, kind: "conversation", onError });
 * const where = await ownership.owner("c1");
 * if (where.local) ownership.touch("c1"); // run it here
 * else await rpc.call(where.node, "conversation.submit", { id: "c1" });
 * ```
 */
export function createOwnership(options: OwnershipOptions): Ownership {
  const { leases, bus, kind, onError } = options;
  const self = bus.node;
  const ttlMs = options.ttlMs ?? 10_000;
  const renewMs = options.renewMs ?? Math.max(1, Math.floor(ttlMs / 3));
  const idleMs = options.idleMs ?? 300_000;
  const now = options.now ?? Date.now;
  if (!(renewMs < ttlMs)) {
    throw new RangeError(
      `Cannot create the ownership of "${kind}": renewMs "${renewMs}" is not below ttlMs "${ttlMs}"`,
    );
  }

  const held = new Map<string, Held>();
  const remote = new Map<string, Remote>();
  const resolving = new Map<string, Promise<Owner>>();
  const releasing = new Map<string, Promise<void>>();
  let nodes: { at: number; ids: Promise<Set<string>> } | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;
  let pass: Promise<void> | undefined;
  let closed = false;
  // Waits for a lapse in progress; `close` cuts them short.
  const sleepers = new Set<() => void>();

  function delay(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timeout);
        sleepers.delete(wake);
        resolve();
      };
      const timeout = setTimeout(wake, Math.max(0, ms));
      sleepers.add(wake);
    });
  }

  function alive(node: string): Promise<boolean> {
    const at = now();
    if (!nodes || at - nodes.at >= NODES_REUSE_MS) {
      const ids = bus.nodes().then((list) => new Set(list.map((n) => n.id)));
      const entry = { at, ids };
      nodes = entry;
      // A failed read is not reused.
      ids.catch(() => {
        if (nodes === entry) nodes = undefined;
      });
    }
    return nodes.ids.then((ids) => ids.has(node));
  }

  function remember(id: string, info: LeaseInfo) {
    remote.delete(id);
    if (remote.size >= MAX_REMOTE) remote.delete(remote.keys().next().value!);
    remote.set(id, { node: info.node, until: Math.min(info.expiresAt, now() + renewMs) });
  }

  function hold(id: string, lease: Lease) {
    held.set(id, { lease, usedAt: now() });
    remote.delete(id);
    timer ??= setInterval(() => void renewNow(), renewMs);
  }

  function lost(id: string, entry: Held) {
    if (held.get(id) !== entry) return;
    held.delete(id);
    onError(
      `The lease of ${kind} "${clip(id)}" was taken over by another node`,
      new Error(`Lease token ${entry.lease.token} lost`),
    );
  }

  async function resolve(id: string): Promise<Owner> {
    await releasing.get(id);
    const mine = held.get(id);
    if (mine) {
      // Held but lapsed by our clock (renewals failed): keep it only if it is still ours.
      const renewed = await leases.renew(mine.lease);
      if (renewed && held.get(id) === mine) {
        mine.lease = renewed;
        return LOCAL;
      }
      if (!renewed) lost(id, mine);
    }
    // A gone holder's lease is waited for when it lapses within this.
    const deadline = now() + ttlMs + renewMs;
    for (let round = 0; round < MAX_ROUNDS && !closed; round++) {
      const info = await leases.holder(kind, id);
      if (!info) {
        const lease = await leases.acquire(kind, id);
        if (closed) {
          if (lease) await leases.release(lease).catch(() => {});
          break;
        }
        if (lease) {
          hold(id, lease);
          return LOCAL;
        }
        continue; // another node took it first: read who
      }
      if (info.node !== self && await alive(info.node)) {
        remember(id, info);
        return { local: false, node: info.node };
      }
      // The holder is gone (a node that left, or an earlier run of this one).
      if (info.expiresAt > deadline) {
        throw new AppError(
          "unavailable",
          `The owner of ${kind} "${clip(id)}" is gone and its lease has not lapsed yet`,
          { retryAfterMs: info.expiresAt - now() },
        );
      }
      await delay(info.expiresAt - now() + 1);
    }
    throw new AppError(
      "unavailable",
      closed ? "This node is shutting down" : `Cannot settle the owner of ${kind} "${clip(id)}"`,
    );
  }

  function owner(id: string): Promise<Owner> {
    if (closed) {
      return Promise.reject(new AppError("unavailable", "This node is shutting down"));
    }
    const mine = held.get(id);
    if (mine && mine.lease.expiresAt > now()) {
      return Promise.resolve(LOCAL);
    }
    const seen = remote.get(id);
    if (!mine && seen) {
      if (seen.until > now()) return Promise.resolve({ local: false, node: seen.node });
      remote.delete(id);
    }
    // Concurrent questions about one actor share one answer: one acquisition at most.
    let answer = resolving.get(id);
    if (!answer) {
      const started = resolve(id);
      answer = started;
      resolving.set(id, started);
      started.then(
        () => void (resolving.get(id) === started && resolving.delete(id)),
        () => void (resolving.get(id) === started && resolving.delete(id)),
      );
    }
    return answer;
  }

  async function renewOne(id: string, entry: Held) {
    try {
      const renewed = await leases.renew(entry.lease);
      if (held.get(id) !== entry) return;
      if (renewed) entry.lease = renewed;
      else lost(id, entry);
    } catch (error) {
      onError(`Cannot renew the lease of ${kind} "${clip(id)}"`, error);
    }
  }

  async function release(id: string, entry: Held) {
    if (held.get(id) !== entry) return;
    held.delete(id);
    const done = leases.release(entry.lease).then(
      () => {},
      (error) => onError(`Cannot release the lease of ${kind} "${clip(id)}"`, error),
    );
    releasing.set(id, done);
    await done;
    if (releasing.get(id) === done) releasing.delete(id);
  }

  function stopTimerIfIdle() {
    if (held.size > 0 || timer === undefined) return;
    clearInterval(timer);
    timer = undefined;
  }

  function renewNow(): Promise<void> {
    pass ??= (async () => {
      const at = now();
      const tasks: (() => Promise<void>)[] = [];
      for (const [id, entry] of held) {
        tasks.push(
          at - entry.usedAt >= idleMs ? () => release(id, entry) : () => renewOne(id, entry),
        );
      }
      await runLimited(tasks, CONCURRENCY);
      for (const [id, seen] of remote) if (seen.until <= at) remote.delete(id);
      stopTimerIfIdle();
    })().finally(() => pass = undefined);
    return pass;
  }

  return {
    owner,
    touch(id) {
      const entry = held.get(id);
      if (entry) entry.usedAt = now();
    },
    forget(id) {
      remote.delete(id);
      // Whoever did not answer may have left: the next question reads the nodes again.
      nodes = undefined;
    },
    fenceOf: (id) => held.get(id)?.lease,
    held: () => [...held.keys()],
    renewNow,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      timer = undefined;
      for (const wake of [...sleepers]) wake();
      await pass;
      await Promise.allSettled([...resolving.values()]);
      await runLimited(
        [...held].map(([id, entry]) => () => release(id, entry)),
        CONCURRENCY,
      );
      remote.clear();
    },
  };
}
