/**
 * What one Deno KV operation may hold, and the budgets relais keeps under each: every KV
 * adapter (streams, events, conversations, directory) sizes its commits and reads here,
 * and the Deno KV-compatible database on Redis enforces the same limits.
 *
 * The budgets keep a margin under KV's own limits, so a writer that counts a key or a
 * byte short still commits.
 */

/** Deno KV's own limits. */
export const KV_LIMITS = {
  /** Bytes of one key written. */
  writeKeyBytes: 2048,
  /** Bytes of one key read (one more than written: a range end may be a key plus one). */
  readKeyBytes: 2049,
  /** Bytes of one value. */
  valueBytes: 65_536,
  /** Checks of one atomic operation. */
  checks: 100,
  /** Mutations of one atomic operation. */
  mutations: 1000,
  /** Bytes of all the keys of one atomic operation. */
  totalKeyBytes: 81_920,
  /** Bytes, keys and values, of one atomic operation. */
  totalBytes: 819_200,
  /** Keys of one `getMany`. */
  getMany: 10,
} as const;

/** Checks one commit may hold. */
export const MAX_CHECKS = KV_LIMITS.checks - 1;
/** Mutations one commit may hold. */
export const MAX_MUTATIONS = KV_LIMITS.mutations - 10;
/** Bytes of keys one commit may hold. */
export const MAX_KEY_BYTES = 64 * 1024;
/** Bytes, keys and values, one commit may hold. */
export const MAX_BYTES = 640 * 1024;
/** Characters of one string value: UTF-16 strings stay under KV's 64 KiB values. */
export const MAX_VALUE_CHARS = 30_000;
/** Keys one `kv.getMany` call reads. */
export const GET_MANY = KV_LIMITS.getMany;
