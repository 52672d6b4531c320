/**
 * Batched reads shared by every Deno KV adapter: KV's `getMany` takes at most ten keys
 * (a database may declare more, see `kvLimitsOf`), so longer lists are split, read in
 * bounded waves, and put back in the order asked.
 */

import { kvBudgetsOf } from "./kv/limits.ts";

/** `getMany` calls in flight at once: large lists are read in waves of this many. */
const READS_IN_FLIGHT = 32;

/** Splits `list` into consecutive slices of at most `size` items. */
export function chunk<T>(list: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}

/** Reads any number of keys, returning their entries in the order of `list`. */
export async function getManyEntries<T>(
  kv: Deno.Kv,
  list: readonly Deno.KvKey[],
): Promise<Deno.KvEntryMaybe<T>[]> {
  const out: Deno.KvEntryMaybe<T>[] = [];
  for (const wave of chunk(chunk([...list], kvBudgetsOf(kv).getMany), READS_IN_FLIGHT)) {
    const parts = await Promise.all(wave.map((part) => kv.getMany<T[]>(part)));
    for (const part of parts) out.push(...(part as Deno.KvEntryMaybe<T>[]));
  }
  return out;
}
