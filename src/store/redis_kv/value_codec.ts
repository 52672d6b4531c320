/**
 * Deno KV values as Redis strings. A stored value is its versionstamp (20 hex digits),
 * a one-byte tag and the payload:
 *
 * - `v`: any structured-clone value, V8-serialized (`node:v8`, as Deno KV does);
 * - `u`: a `KvU64`, as its decimal digits, so that the commit script can `sum`, `min`
 *   and `max` it exactly over the whole unsigned 64-bit range (sums wrap at 2^64, as in
 *   Deno KV).
 */

import { Buffer } from "node:buffer";
import { deserialize, serialize } from "node:v8";
import { kvU64 } from "../kv_u64.ts";

/** Characters of a versionstamp at the head of every stored value. */
export const VERSIONSTAMP_LENGTH = 20;
/** The tag of a V8-serialized value. */
const V8_TAG = 0x76; // "v"
/** The tag of a `KvU64` value. */
const U64_TAG = 0x75; // "u"

const U64_MAX = (1n << 64n) - 1n;

/** Whether `value` is a `KvU64` of whichever KV client built it (Deno's or Node's). */
export function isKvU64(value: unknown): value is Deno.KvU64 {
  return typeof value === "object" && value !== null &&
    (value as { constructor?: { name?: string } }).constructor?.name === "KvU64" &&
    typeof (value as { value?: unknown }).value === "bigint";
}

/** The decimal operand of a `sum`, `min` or `max`; throws outside the u64 range. */
export function u64Operand(n: bigint): string {
  if (n < 0n || n > U64_MAX) throw new RangeError(`Value "${n}" is out of the u64 range`);
  return n.toString();
}

/** Encodes a value as its tag and payload (without the versionstamp). */
export function encodeValue(value: unknown): Buffer {
  if (isKvU64(value)) return Buffer.from(`u${u64Operand(value.value)}`, "latin1");
  const body = serialize(value);
  const out = Buffer.allocUnsafe(body.length + 1);
  out[0] = V8_TAG;
  out.set(body, 1);
  return out;
}

/** Decodes a stored Redis string into its value and versionstamp. */
export function decodeStored(stored: Uint8Array): { value: unknown; versionstamp: string } {
  const bytes = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
  const versionstamp = bytes.toString("latin1", 0, VERSIONSTAMP_LENGTH);
  const tag = bytes[VERSIONSTAMP_LENGTH];
  const payload = bytes.subarray(VERSIONSTAMP_LENGTH + 1);
  if (tag === U64_TAG) return { value: kvU64(BigInt(payload.toString("latin1"))), versionstamp };
  if (tag === V8_TAG) return { value: deserialize(payload), versionstamp };
  throw new TypeError(`Cannot decode a stored value: unknown tag "${tag}"`);
}
