/**
 * Deno KV on Node: `@deno/kv` over the same SQLite file as `Deno.openKv`.
 *
 * Values are V8-serialized. Deno's newer V8 stamps a newer format version in each value's
 * header than Node's V8 accepts, though the values relais stores (plain objects, arrays,
 * strings, numbers, bigints, booleans, null) are encoded with the same tags in both: a
 * newer header is read as this Node's own version, and a tag this Node does not know
 * still fails loudly rather than being misread. Node writes its own (older) version,
 * which Deno reads as is.
 */

import { deserialize, serialize } from "node:v8";
import { KvU64, openKv } from "@deno/kv";
import { useKvU64 } from "../store/kv_u64.ts";

/** The serialization format version of this Node's V8 (the byte after the 0xFF tag). */
const NODE_FORMAT = serialize(null)[1];

/** Decodes a stored value, reading a newer format header as this Node's own. */
export function decodeV8(bytes: Uint8Array): unknown {
  if (bytes[0] === 0xff && bytes[1] > NODE_FORMAT && bytes[1] < 0x80) {
    const copy = Uint8Array.from(bytes);
    copy[1] = NODE_FORMAT;
    return deserialize(copy);
  }
  return deserialize(bytes);
}

/** Encodes a value to store, in this Node's format. */
export function encodeV8(value: unknown): Uint8Array {
  return serialize(value);
}

/** Opens the KV database at `path` (`:memory:` allowed), as `Deno.openKv` would. */
export async function openNodeKv(path: string): Promise<Deno.Kv> {
  // Counters written in atomic operations must be instances of the client's own class.
  useKvU64(KvU64 as unknown as typeof Deno.KvU64);
  return (await openKv(path, { encodeV8, decodeV8 })) as unknown as Deno.Kv;
}
