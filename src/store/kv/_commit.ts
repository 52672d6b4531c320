/**
 * How the Deno KV adapters commit: within the budgets of `limits.ts`, the retry of a
 * commit that lost a race, and the group commit that lets concurrent writers share one.
 *
 * Every multi-key write is one `kv.atomic()` with `check()`s; a commit that loses a race
 * is retried from a fresh read, never ignored.
 */

import { backoffDelay } from "../../backoff.ts";
import { chunk } from "../kv_reads.ts";
import { MAX_BYTES, MAX_CHECKS, MAX_KEY_BYTES, MAX_MUTATIONS } from "./limits.ts";

/** Retries of a commit that keeps losing races before the write gives up. */
export const MAX_RETRIES = 50;
/** Most writes grouped in one commit. */
const GROUP_MAX = 64;
/** Commits of one group commit under way at once. */
const IN_FLIGHT = 2;
/**
 * How long a write that finds no commit under way waits for others to share its commit. A
 * commit costs ~0.2 ms of CPU (both of KV's threads) whatever it carries, up to a few keys:
 * writes arriving one by one each paid it (at 1,000 publishes a second, ~800 commits).
 */
export const LINGER_MS = 1;
/** Deletions per commit when erasing keys in bulk. */
const DELETE_BATCH = 200;

/** What a write adds to a commit, as upper bounds. */
export interface CommitCost {
  checks: number;
  mutations: number;
  keyBytes: number;
  bytes: number;
}

/**
 * Waits before retry number `attempt` (0 for the first) a random time that grows with
 * the attempt up to ten `unitMs`: writers that raced spread out instead of racing again.
 */
export function retryPause(attempt: number, unitMs = 5): Promise<void> {
  const policy = { baseMs: unitMs, maxMs: unitMs * 10, shape: "LINEAR", jitter: "full" } as const;
  return new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt, policy)));
}

/** Deletes keys in commits of a few hundred (KV takes at most 1000 mutations each). */
export async function deleteAll(kv: Deno.Kv, list: Deno.KvKey[]): Promise<void> {
  for (const part of chunk(list, DELETE_BATCH)) {
    const op = kv.atomic();
    for (const key of part) op.delete(key);
    const res = await op.commit();
    if (!res.ok) throw new Error("Cannot erase keys");
  }
}

/** A write ready to commit, alone or grouped with others. */
export interface GroupedWrite<T> {
  /** What it writes under: writes of the same id never share a commit. */
  id: string;
  /**
   * The users whose keys it checks or writes (a user whose seq comes from a head is
   * written unchecked): writes sharing a user never share a commit.
   */
  users: string[];
  cost: CommitCost;
  /** Adds the write to `op`; answers what it wrote. */
  build(op: Deno.AtomicOperation): T;
}

/** A write that landed: what it wrote and the versionstamp of the commit that carried it. */
export interface Landed<T> {
  written: T;
  versionstamp: string;
}

interface Waiting<T> extends GroupedWrite<T> {
  done(landed: Landed<T> | undefined): void;
  fail(error: unknown): void;
}

/**
 * Creates a group commit on `kv`: `commit(write)` answers what the write wrote, or
 * `undefined` when one of its checks failed. Writes that arrive while a commit is in
 * flight go together in the next one (KV commits one at a time, so a commit of many
 * costs about as much as one), when their users and ids are disjoint and their sum fits
 * the budgets of one atomic operation; a write that finds none in flight waits
 * {@linkcode LINGER_MS} for company (a full group goes at once). Two commits may be under
 * way at once, over disjoint users and ids.
 */
export function createGroupCommit<T>(
  kv: Deno.Kv,
): (write: GroupedWrite<T>) => Promise<T | undefined> {
  const commit = createVersionedGroupCommit<T>(kv);
  return async (write) => (await commit(write))?.written;
}

/**
 * Like {@linkcode createGroupCommit}, answering also the versionstamp of the commit that
 * carried the write, for a writer that fences its next write with it: every key a commit
 * sets gets that versionstamp, whichever writes shared it.
 */
export function createVersionedGroupCommit<T>(
  kv: Deno.Kv,
): (write: GroupedWrite<T>) => Promise<Landed<T> | undefined> {
  const waiting: Waiting<T>[] = [];
  // Users and ids of the groups in flight: the next group leaves them out, so that two
  // commits in flight never race each other.
  const busyUsers = new Map<string, number>();
  const busyIds = new Map<string, number>();
  let inFlight = 0;
  let lingering: ReturnType<typeof setTimeout> | undefined;

  function commitGrouped(write: GroupedWrite<T>): Promise<Landed<T> | undefined> {
    return new Promise((done, fail) => {
      waiting.push({ ...write, done, fail });
      if (inFlight > 0 || waiting.length >= GROUP_MAX) pump();
      else lingering ??= setTimeout(pump, LINGER_MS);
    });
  }

  const busy = (p: GroupedWrite<T>) => busyIds.has(p.id) || p.users.some((u) => busyUsers.has(u));

  function takeGroup(): Waiting<T>[] {
    const group: Waiting<T>[] = [];
    const rest: Waiting<T>[] = [];
    const users = new Set<string>();
    const ids = new Set<string>();
    const sum: CommitCost = { checks: 0, mutations: 0, keyBytes: 0, bytes: 0 };
    for (const p of waiting) {
      const fits = group.length < GROUP_MAX && !ids.has(p.id) &&
        p.users.every((u) => !users.has(u)) &&
        sum.checks + p.cost.checks <= MAX_CHECKS &&
        sum.mutations + p.cost.mutations <= MAX_MUTATIONS &&
        sum.keyBytes + p.cost.keyBytes <= MAX_KEY_BYTES &&
        sum.bytes + p.cost.bytes <= MAX_BYTES;
      // A write alone always goes, whatever it costs: its commit tells whether it fits. A
      // write sharing a user or an id with a commit in flight waits for it.
      if ((!fits && group.length > 0) || busy(p)) {
        rest.push(p);
        continue;
      }
      group.push(p);
      ids.add(p.id);
      for (const u of p.users) users.add(u);
      sum.checks += p.cost.checks;
      sum.mutations += p.cost.mutations;
      sum.keyBytes += p.cost.keyBytes;
      sum.bytes += p.cost.bytes;
    }
    waiting.splice(0, waiting.length, ...rest);
    return group;
  }

  async function commitAlone(p: Waiting<T>) {
    try {
      const op = kv.atomic();
      const written = p.build(op);
      const res = await op.commit();
      p.done(res.ok ? { written, versionstamp: res.versionstamp } : undefined);
    } catch (error) {
      p.fail(error);
    }
  }

  async function commitGroup(group: Waiting<T>[]) {
    if (group.length === 1) return await commitAlone(group[0]);
    let built: T[] = [];
    let versionstamp: string | undefined;
    try {
      const op = kv.atomic();
      built = group.map((p) => p.build(op));
      const res = await op.commit();
      if (res.ok) versionstamp = res.versionstamp;
    } catch {
      versionstamp = undefined;
    }
    if (versionstamp !== undefined) {
      const stamp = versionstamp;
      group.forEach((p, i) => p.done({ written: built[i], versionstamp: stamp }));
    } // One stale check fails the whole group: alone, each finds out whether it was its.
    else await Promise.all(group.map(commitAlone));
  }

  function mark(group: Waiting<T>[], by: 1 | -1) {
    const bump = (map: Map<string, number>, key: string) => {
      const n = (map.get(key) ?? 0) + by;
      if (n > 0) map.set(key, n);
      else map.delete(key);
    };
    for (const p of group) {
      bump(busyIds, p.id);
      for (const u of p.users) bump(busyUsers, u);
    }
  }

  /**
   * Starts commits while fewer than {@linkcode IN_FLIGHT} are under way: the next group is
   * built while the last one is written, instead of once its answer is back.
   */
  function pump() {
    clearTimeout(lingering);
    lingering = undefined;
    while (inFlight < IN_FLIGHT && waiting.length > 0) {
      const group = takeGroup();
      if (group.length === 0) return;
      inFlight++;
      mark(group, 1);
      void commitGroup(group).finally(() => {
        mark(group, -1);
        inFlight--;
        pump();
      });
    }
  }

  return commitGrouped;
}
