/**
 * Actor leases with fencing tokens: one live owner per actor (user, conversation,
 * mailer…) across the nodes sharing a store, kept in the store itself (Deno KV or the
 * Redis KV, both behind `Deno.Kv`).
 *
 * Two entries per actor, under a prefix of their own:
 * - `["lease", "holder", kind, id]`: `{ node, token, expiresAt }`, the current holder;
 *   written by each acquisition and renewal, deleted by a release;
 * - `["lease", "token", kind, id]`: the last fencing token handed out for the actor;
 *   written only by acquisitions (the token plus one) and releases (the same token,
 *   rewritten), never by renewals, and never deleted, so that tokens only grow across
 *   takeovers.
 *
 * The fence checks the versionstamp of the token entry that the lease's acquisition
 * wrote. A takeover or a release rewrites that entry, so a commit fenced with an older
 * lease fails and writes nothing; the holder's own renewals leave it alone, so the lease
 * an actor got from `acquire` keeps fencing its writes for as long as it holds it (the
 * lease `renew` answers carries the same fence, only a later `expiresAt`).
 *
 * Expiry is decided by the injected clock of whoever reads: a lapsed lease is free to be
 * taken over, but until another node does so its holder's fence still passes (no other
 * writer exists yet) and its holder may still renew it. A holder renews well within
 * `ttlMs`; the fence, not the clock, is what keeps a paused or partitioned node from
 * writing once another node has taken over.
 *
 * Both entries are kept without `expireIn`: the token entry must outlive every lease, and
 * the holder entry is small and removed by a release.
 *
 * @module
 */

import { leaseHolderKey, leaseTokenKey } from "../store/keys.ts";

/** Who holds an actor's lease, and until when. */
export interface LeaseInfo {
  /** The actor kind, e.g. `"user"`, `"conversation"`, `"mailer"`. */
  readonly kind: string;
  /** The actor id within its kind; any string. */
  readonly id: string;
  /** The node holding the lease. */
  readonly node: string;
  /** The fencing token: greater for each acquisition of the same actor's lease. */
  readonly token: number;
  /** When the lease lapses unless renewed, in milliseconds since the epoch. */
  readonly expiresAt: number;
}

/** A lease held by this node: what {@linkcode Leases.fence} needs to fence a write. */
export interface Lease extends LeaseInfo {
  /** The versionstamp of the token entry written by this lease's acquisition. */
  readonly stamp: string;
}

/** Options of {@linkcode createLeases}. */
export interface LeasesOptions {
  /** This node's id, recorded as the holder of the leases it acquires. */
  node: string;
  /** How long a lease lives without a renewal, in milliseconds. */
  ttlMs: number;
  /** The clock, in milliseconds since the epoch (default `Date.now`). */
  now?: () => number;
}

/** The leases of one node. */
export interface Leases {
  /**
   * Acquires the lease of actor `kind`/`id` with a new, greater token; answers
   * `undefined` when a live lease is held (by another node, or by this node: use
   * `renew` to keep a lease). Of several nodes racing for it, one wins.
   */
  acquire(kind: string, id: string): Promise<Lease | undefined>;
  /**
   * Extends `lease` to `ttlMs` from now; answers the renewed lease (same token and
   * fence) or `undefined` when it was lost: taken over by another acquisition, or
   * released.
   */
  renew(lease: Lease): Promise<Lease | undefined>;
  /**
   * Gives `lease` up, so that another node may acquire it at once; commits fenced with
   * it fail from then on. Answers `false` when it was already lost.
   */
  release(lease: Lease): Promise<boolean>;
  /** Who holds the lease of actor `kind`/`id`, if it is live. */
  holder(kind: string, id: string): Promise<LeaseInfo | undefined>;
  /**
   * Adds to `op` the check that `lease` is still the actor's current lease (no other
   * acquisition and no release since), so that a commit by a stale owner fails.
   */
  fence(op: Deno.AtomicOperation, lease: Lease): Deno.AtomicOperation;
}

/** The holder entry's value. */
interface HolderValue {
  node: string;
  token: number;
  expiresAt: number;
}

// A commit that fails its checks because a racing writer got there first is read again;
// each retry means another write to the lease's entries, so a few are plenty.
const MAX_ATTEMPTS = 8;

function isHolderValue(value: unknown): value is HolderValue {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.node === "string" && typeof v.token === "number" &&
    typeof v.expiresAt === "number";
}

function tokenOf(value: unknown): number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0 ? value : 0;
}

/**
 * Creates the leases of `node` on `kv`.
 *
 * @example
 * ```ts
 * const leases = createLeases(kv, { node: "n1", ttlMs: 10_000 });
 * const lease = await leases.acquire("user", "u1");
 * if (lease) {
 *   const res = await leases.fence(kv.atomic(), lease).set(["k"], "v").commit();
 *   // res.ok is false once another node took the lease over
 * }
 * ```
 */
export function createLeases(kv: Deno.Kv, options: LeasesOptions): Leases {
  const { node, ttlMs } = options;
  const now = options.now ?? Date.now;
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new RangeError(`Cannot create leases: ttlMs "${ttlMs}" is not a positive number`);
  }

  async function read(kind: string, id: string) {
    const [holder, token] = await kv.getMany<[unknown, unknown]>([
      leaseHolderKey(kind, id),
      leaseTokenKey(kind, id),
    ]);
    return { holder, token, value: isHolderValue(holder.value) ? holder.value : undefined };
  }

  /** Whether what was read still shows `lease` as the current one. */
  function current(lease: Lease, state: Awaited<ReturnType<typeof read>>): boolean {
    return state.token.versionstamp === lease.stamp && state.value !== undefined &&
      state.value.token === lease.token && state.value.node === lease.node;
  }

  async function acquire(kind: string, id: string): Promise<Lease | undefined> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const state = await read(kind, id);
      const at = now();
      if (state.value && state.value.expiresAt > at) return undefined;
      const token = Math.max(tokenOf(state.token.value), state.value?.token ?? 0) + 1;
      const value: HolderValue = { node, token, expiresAt: at + ttlMs };
      const res = await kv.atomic()
        .check(state.holder, state.token)
        .set(leaseTokenKey(kind, id), token)
        .set(leaseHolderKey(kind, id), value)
        .commit();
      if (res.ok) return { kind, id, ...value, stamp: res.versionstamp };
    }
    // Every attempt lost a race: other nodes keep acquiring it.
    return undefined;
  }

  async function renew(lease: Lease): Promise<Lease | undefined> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const state = await read(lease.kind, lease.id);
      if (!current(lease, state)) return undefined;
      const value: HolderValue = { node: lease.node, token: lease.token, expiresAt: now() + ttlMs };
      const res = await kv.atomic()
        .check(state.holder, state.token)
        .set(leaseHolderKey(lease.kind, lease.id), value)
        .commit();
      if (res.ok) return { ...lease, expiresAt: value.expiresAt };
    }
    return undefined;
  }

  async function release(lease: Lease): Promise<boolean> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const state = await read(lease.kind, lease.id);
      if (!current(lease, state)) return false;
      // Rewriting the token entry (same token) gives it a new versionstamp: the fence of
      // the released lease fails from now on.
      const res = await kv.atomic()
        .check(state.holder, state.token)
        .delete(leaseHolderKey(lease.kind, lease.id))
        .set(leaseTokenKey(lease.kind, lease.id), lease.token)
        .commit();
      if (res.ok) return true;
    }
    return false;
  }

  async function holder(kind: string, id: string): Promise<LeaseInfo | undefined> {
    const entry = await kv.get(leaseHolderKey(kind, id));
    const value = isHolderValue(entry.value) ? entry.value : undefined;
    if (!value || value.expiresAt <= now()) return undefined;
    return { kind, id, node: value.node, token: value.token, expiresAt: value.expiresAt };
  }

  function fence(op: Deno.AtomicOperation, lease: Lease): Deno.AtomicOperation {
    return op.check({ key: leaseTokenKey(lease.kind, lease.id), versionstamp: lease.stamp });
  }

  return { acquire, renew, release, holder, fence };
}
