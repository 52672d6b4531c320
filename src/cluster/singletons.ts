/**
 * Cluster singletons: work that one node of the cluster runs at a time (the mailer, the
 * retention sweeper, the Web Push runner, the fan-out janitor), each behind a lease of
 * its own, and leases held for the length of one piece of work (a fan-out job).
 *
 * For a singleton, every node tries to acquire its lease `kind`/`id`: the one that does
 * starts it and renews the lease well within its ttl; the others try again every
 * `retryMs`. When a renewal answers that the lease is lost (another node took it over
 * after it lapsed), the singleton is stopped at once. When the store cannot be reached,
 * it is stopped once the lease would lapse before the next renewal, since another node
 * may take over from then on. A node that dies stops renewing: its lease lapses and
 * another node starts the singleton within about one ttl. A graceful `close` stops and
 * releases, so another node takes over on its next try.
 *
 * Stopping is not instant everywhere: work already under way (a batch of mails) may
 * finish after `stop`, and a paused node only notices its loss at its next renewal. The
 * fence ({@linkcode Singletons.fence}) is what keeps such a node from committing once
 * another one has taken over.
 *
 * One-node mode needs none of this: the singletons just start.
 *
 * @module
 */

import { leaseTokenKey } from "../store/keys.ts";
import type { Lease, Leases } from "./leases.ts";

/** Options of {@linkcode createSingletons}. */
export interface SingletonsOptions {
  /** This node's leases. */
  leases: Leases;
  /** The ttl the leases were created with, in milliseconds: the defaults derive from it. */
  ttlMs: number;
  /** How often a held lease is renewed (default a third of `ttlMs`). */
  renewMs?: number;
  /** How often a node without the lease tries to acquire it (default a third of `ttlMs`). */
  retryMs?: number;
  /** The clock the leases use, in milliseconds since the epoch (default `Date.now`). */
  now?: () => number;
  onError(message: string, error: unknown): void;
}

/** The singletons of one node, and the leases it holds around single pieces of work. */
export interface Singletons {
  /**
   * Runs `start` on this node while it holds the lease `kind`/`id`, and `stop` as soon
   * as it loses it; keeps trying to acquire it while it does not. Resolves once the
   * first attempt is over (the singleton started here, or runs elsewhere).
   */
  run(kind: string, id: string, start: () => Promise<void>, stop: () => void): Promise<void>;
  /** Whether this node runs the singleton `kind`/`id` now. */
  running(kind: string, id: string): boolean;
  /**
   * Adds to `op` the check that this node still holds the lease `kind`/`id`: a commit of
   * a node that lost it, or never held it, fails and writes nothing.
   */
  fence(kind: string, id: string, op: Deno.AtomicOperation): Deno.AtomicOperation;
  /**
   * Runs `work` under the lease `kind`/`id`, renewed while it runs and released when it
   * ends; answers `undefined` without running it when another node holds the lease.
   */
  hold<T>(kind: string, id: string, work: () => Promise<T>): Promise<T | undefined>;
  /** Stops every singleton this node runs and releases its leases. */
  close(): Promise<void>;
}

/** One singleton as this node sees it. */
interface Slot {
  readonly kind: string;
  readonly id: string;
  readonly start: () => Promise<void>;
  readonly stop: () => void;
  /** The lease this node holds now. */
  lease?: Lease;
  /** The last lease this node held: what fences its commits once it lost it. */
  last?: Lease;
  /** Whether `start` ran and `stop` has not. */
  running: boolean;
  timer?: ReturnType<typeof setTimeout>;
  /** The attempt or renewal in progress. */
  step: Promise<void>;
}

/**
 * The versionstamp no commit has (versionstamps start above zero): the check of a node
 * that never held the lease, so that its fenced commits fail.
 */
const NO_VERSIONSTAMP = "0".repeat(20);

const slotKey = (kind: string, id: string) => `${kind}\u0000${id}`;

/**
 * Creates the singletons of one node.
 *
 * @example
 * ```ts
 * const singletons = createSingletons({ leases, ttlMs: 10_000, onError });
 * await singletons.run("mailer", "main", () => startMailer(), () => stopMailer());
 * // later, on shutdown: another node takes over at once
 * await singletons.close();
 * ```
 */
export function createSingletons(options: SingletonsOptions): Singletons {
  const { leases, ttlMs, onError } = options;
  const now = options.now ?? Date.now;
  const renewMs = options.renewMs ?? Math.max(1, Math.floor(ttlMs / 3));
  const retryMs = options.retryMs ?? Math.max(1, Math.floor(ttlMs / 3));
  if (!(renewMs < ttlMs)) {
    throw new RangeError(`Cannot create singletons: renewMs "${renewMs}" is not below the ttl`);
  }
  const slots = new Map<string, Slot>();
  let closed = false;

  const name = (slot: Slot) => `"${slot.kind}/${slot.id}"`;

  function halt(slot: Slot) {
    if (!slot.running) return;
    slot.running = false;
    try {
      slot.stop();
    } catch (error) {
      onError(`Stopping singleton ${name(slot)} failed`, error);
    }
  }

  async function take(slot: Slot) {
    const lease = await leases.acquire(slot.kind, slot.id);
    if (!lease) return;
    slot.lease = slot.last = lease;
    // Closing meanwhile: `close` releases the lease once this step is over.
    if (closed) return;
    try {
      await slot.start();
      slot.running = true;
    } catch (error) {
      // Given up, so that another node (or this one, on its next try) may start it.
      slot.lease = undefined;
      onError(`Starting singleton ${name(slot)} failed`, error);
      await leases.release(lease);
    }
  }

  async function keep(slot: Slot, lease: Lease) {
    let renewed: Lease | undefined;
    try {
      renewed = await leases.renew(lease);
    } catch (error) {
      onError(`Renewing the lease of singleton ${name(slot)} failed`, error);
      // Past its expiry another node may take over: stop before the next renewal would
      // come too late.
      if (now() + renewMs < lease.expiresAt) return;
      slot.lease = undefined;
      return halt(slot);
    }
    if (renewed) {
      slot.lease = slot.last = renewed;
      return;
    }
    slot.lease = undefined;
    halt(slot);
  }

  async function step(slot: Slot) {
    try {
      if (slot.lease) await keep(slot, slot.lease);
      else await take(slot);
    } catch (error) {
      onError(`Lease of singleton ${name(slot)} failed`, error);
    }
    if (closed) return;
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      slot.step = step(slot);
    }, slot.lease ? renewMs : retryMs);
  }

  return {
    run(kind, id, start, stop) {
      if (closed) return Promise.reject(new Error("Cannot run a singleton: closed"));
      const key = slotKey(kind, id);
      if (slots.has(key)) {
        return Promise.reject(new Error(`Cannot run singleton "${kind}/${id}": it runs already`));
      }
      const slot: Slot = { kind, id, start, stop, running: false, step: Promise.resolve() };
      slots.set(key, slot);
      slot.step = step(slot);
      return slot.step;
    },
    running(kind, id) {
      return slots.get(slotKey(kind, id))?.running ?? false;
    },
    fence(kind, id, op) {
      const slot = slots.get(slotKey(kind, id));
      const lease = slot?.lease ?? slot?.last;
      if (lease) return leases.fence(op, lease);
      return op.check({ key: leaseTokenKey(kind, id), versionstamp: NO_VERSIONSTAMP });
    },
    async hold(kind, id, work) {
      const lease = await leases.acquire(kind, id);
      if (!lease) return undefined;
      let held: Lease | undefined = lease;
      // Renewals in order, one at a time; the release waits for the last one.
      let renewing = Promise.resolve();
      const timer = setInterval(() => {
        renewing = renewing.then(async () => {
          if (!held) return;
          try {
            // Lost: the work goes on, and whatever it commits is checked by its own writes.
            held = await leases.renew(held);
          } catch (error) {
            onError(`Renewing the lease "${kind}/${id}" failed`, error);
          }
        });
      }, renewMs);
      try {
        return await work();
      } finally {
        clearInterval(timer);
        await renewing;
        if (held) {
          await leases.release(held).catch((error) =>
            onError(`Releasing the lease "${kind}/${id}" failed`, error)
          );
        }
      }
    },
    async close() {
      closed = true;
      await Promise.all([...slots.values()].map(async (slot) => {
        clearTimeout(slot.timer);
        await slot.step;
        halt(slot);
        const lease = slot.lease;
        slot.lease = undefined;
        if (!lease) return;
        try {
          await leases.release(lease);
        } catch (error) {
          onError(`Releasing the lease of singleton ${name(slot)} failed`, error);
        }
      }));
    },
  };
}
