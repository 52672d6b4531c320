/**
 * What one Deno KV operation may hold, and the budgets relais keeps under each: every KV
 * adapter (streams, events, conversations, directory) sizes its commits and reads here.
 *
 * KV refuses an atomic operation above 100 checks, 1000 mutations, 80 KiB of keys or
 * 800 KiB in all, a value above 64 KiB, and a `getMany` above 10 keys. The budgets keep
 * a margin, so a writer that counts a key or a byte short still commits.
 */

/** Checks one commit may hold (KV: 100). */
export const MAX_CHECKS = 99;
/** Mutations one commit may hold (KV: 1000). */
export const MAX_MUTATIONS = 990;
/** Bytes of keys one commit may hold (KV: 80 KiB). */
export const MAX_KEY_BYTES = 64 * 1024;
/** Bytes, keys and values, one commit may hold (KV: 800 KiB). */
export const MAX_BYTES = 640 * 1024;
/** Characters of one string value: UTF-16 strings stay under KV's 64 KiB values. */
export const MAX_VALUE_CHARS = 30_000;
/** Keys one `kv.getMany` call reads (KV: 10). */
export const GET_MANY = 10;
