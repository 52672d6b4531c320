/**
 * Deno KV's unsigned 64-bit integer values (counters that atomic `sum` adds to) without
 * naming a runtime: Deno has `Deno.KvU64`; on Node the entry point registers the class of
 * its KV client (`@deno/kv`), whose atomic operations only accept their own class.
 */

/** A `KvU64` class. */
export type KvU64Class = new (value: bigint) => Deno.KvU64;

let registered: KvU64Class | undefined;

/** Makes {@linkcode kvU64} build instances of `cls` (the Node entry point calls it). */
export function useKvU64(cls: KvU64Class): void {
  registered = cls;
}

/** A KV `u64` value of `value` for the KV client in use. */
export function kvU64(value: bigint): Deno.KvU64 {
  const cls = registered ?? (globalThis as { Deno?: { KvU64?: KvU64Class } }).Deno?.KvU64;
  if (!cls) throw new Error("No KvU64 class: the entry point must register one");
  return new cls(value);
}
