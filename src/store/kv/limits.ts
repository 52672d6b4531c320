/**
 * What one operation of a Deno KV-compatible database may hold, and the budgets relais
 * keeps under each: every KV adapter (streams, events, conversations, directory) sizes its
 * commits and reads here, and the Deno KV-compatible database on Redis enforces its own
 * limits from here too.
 *
 * A database declares its limits under {@linkcode KV_LIMITS_KEY}; one that declares none
 * (Deno KV itself) has Deno KV's. The constants below are Deno KV's budgets, which hold on
 * every database; a writer that sizes its commits by the database it writes to asks
 * {@linkcode kvBudgetsOf}.
 *
 * The budgets keep a margin under the limits, so a writer that counts a key or a byte
 * short still commits.
 */

import { utf8Length } from "../../utf8.ts";

/** What one operation of a database may hold. */
export interface KvLimits {
  /** Bytes of one key written. */
  readonly writeKeyBytes: number;
  /** Bytes of one key read (one more than written: a range end may be a key plus one). */
  readonly readKeyBytes: number;
  /** Bytes of one value. */
  readonly valueBytes: number;
  /** Checks of one atomic operation. */
  readonly checks: number;
  /** Mutations of one atomic operation. */
  readonly mutations: number;
  /** Bytes of all the keys of one atomic operation. */
  readonly totalKeyBytes: number;
  /** Bytes, keys and values, of one atomic operation. */
  readonly totalBytes: number;
  /** Keys of one `getMany`. */
  readonly getMany: number;
}

/** Deno KV's own limits. */
export const KV_LIMITS: KvLimits = Object.freeze({
  writeKeyBytes: 2048,
  readKeyBytes: 2049,
  valueBytes: 65_536,
  checks: 100,
  mutations: 1000,
  totalKeyBytes: 81_920,
  totalBytes: 819_200,
  getMany: 10,
});

/**
 * The Redis KV's limits: Deno KV's on each key and value (adapters split their values by
 * them, and a database moved between the two must read the same), wider on one commit
 * and one read. A commit is one Lua script, which Redis runs alone: these bound how long
 * one runs (a few milliseconds) and how much one round trip carries.
 */
export const REDIS_KV_LIMITS: KvLimits = Object.freeze({
  ...KV_LIMITS,
  checks: 1000,
  mutations: 10_000,
  totalKeyBytes: 819_200,
  totalBytes: 8_192_000,
  getMany: 1000,
});

/** The property under which a database declares its limits, when they are not Deno KV's. */
export const KV_LIMITS_KEY: unique symbol = Symbol.for("relais.kvLimits");

/** The limits of `kv`: those it declares, else Deno KV's. */
export function kvLimitsOf(kv: Deno.Kv): KvLimits {
  const declared = (kv as unknown as { [KV_LIMITS_KEY]?: KvLimits })[KV_LIMITS_KEY];
  return declared ?? KV_LIMITS;
}

/** The budgets relais keeps under a database's limits. */
export interface KvBudgets {
  /** Checks one commit may hold. */
  readonly checks: number;
  /** Mutations one commit may hold. */
  readonly mutations: number;
  /** Bytes of keys one commit may hold. */
  readonly keyBytes: number;
  /** Bytes, keys and values, one commit may hold. */
  readonly bytes: number;
  /** Keys one `getMany` call reads. */
  readonly getMany: number;
}

/** The budgets under `limits`: a check, ten mutations and a fifth of the bytes kept free. */
export function budgetsOf(limits: KvLimits): KvBudgets {
  return Object.freeze({
    checks: limits.checks - 1,
    mutations: limits.mutations - 10,
    keyBytes: Math.floor(limits.totalKeyBytes * 0.8),
    bytes: Math.floor(limits.totalBytes * 0.8),
    getMany: limits.getMany,
  });
}

const DENO_KV_BUDGETS = budgetsOf(KV_LIMITS);
const declaredBudgets = new WeakMap<KvLimits, KvBudgets>();

/** The budgets under the limits of `kv` (Deno KV's unless it declares its own). */
export function kvBudgetsOf(kv: Deno.Kv): KvBudgets {
  const limits = kvLimitsOf(kv);
  if (limits === KV_LIMITS) return DENO_KV_BUDGETS;
  let budgets = declaredBudgets.get(limits);
  if (!budgets) declaredBudgets.set(limits, budgets = budgetsOf(limits));
  return budgets;
}

/** Checks one commit may hold on every database. */
export const MAX_CHECKS: number = DENO_KV_BUDGETS.checks;
/** Mutations one commit may hold on every database. */
export const MAX_MUTATIONS: number = DENO_KV_BUDGETS.mutations;
/** Bytes of keys one commit may hold on every database. */
export const MAX_KEY_BYTES: number = DENO_KV_BUDGETS.keyBytes;
/** Bytes, keys and values, one commit may hold on every database. */
export const MAX_BYTES: number = DENO_KV_BUDGETS.bytes;
/** Characters of one string value: UTF-16 strings stay under KV's 64 KiB values. */
export const MAX_VALUE_CHARS = 30_000;
/** Keys one `kv.getMany` call reads on every database. */
export const GET_MANY: number = DENO_KV_BUDGETS.getMany;

/**
 * The bytes a string takes as a part of a key: KV encodes it in UTF-8 (a UTF-16 character
 * may take three bytes, so a key's characters are not its bytes) with a byte of type and a
 * terminator, and escapes each NUL in two.
 */
export function keyPartBytes(part: string): number {
  const bytes = utf8Length(part) + 2;
  return part.includes("\0") ? bytes + part.split("\0").length - 1 : bytes;
}

/**
 * The bytes a key made of `parts` (its strings) takes encoded, as an upper bound: a margin
 * for its constant parts (its kind and a number, or a directory dimension), then each
 * string.
 */
export function keyBytesOf(...parts: string[]): number {
  let bytes = 24;
  for (const part of parts) bytes += keyPartBytes(part);
  return bytes;
}

/**
 * Whether `error` is a commit refused for holding more than one atomic operation may
 * (checks, mutations, or bytes of keys or in all), as Deno KV and the Redis KV refuse it:
 * nothing of it was written, and the same writes in smaller commits may pass.
 */
export const overOneCommit = (error: unknown): boolean =>
  error instanceof TypeError &&
  /^(Too many (checks|mutations)|Total (key|mutation) size too large)\b/.test(error.message);
