/**
 * Deno KV values as Redis strings. A stored value is its versionstamp (20 hex digits),
 * a one-byte tag and the payload:
 *
 * - `v`: any structured-clone value, V8-serialized (`node:v8`, as Deno KV does; plain
 *   objects, arrays, numbers and one-byte strings written here byte for byte alike,
 *   without a serializer per value);
 * - `u`: a `KvU64`, as its decimal digits, so that the commit script can `sum`, `min`
 *   and `max` it exactly over the whole unsigned 64-bit range (sums wrap at 2^64, as in
 *   Deno KV).
 */

import { Buffer } from "node:buffer";
import { deserialize, serialize } from "node:v8";
import { kvU64 } from "../kv_u64.ts";
import type { ByteWriter } from "./key_codec.ts";

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

/** Appends the tag and payload of `value` (without the versionstamp) to `w`. */
export function encodeValueInto(w: ByteWriter, value: unknown): void {
  if (isKvU64(value)) {
    w.byte(U64_TAG);
    w.latin1(u64Operand(value.value));
    return;
  }
  w.byte(V8_TAG);
  const start = w.length;
  w.byte(0xff);
  w.byte(V8_VERSION);
  if (writePlain(w, value, 0)) return;
  w.truncate(start);
  w.bytes(serialize(value));
}

/** The version of V8's serialization format written by {@linkcode writePlain}. */
const V8_VERSION = 15;
/** How deep {@linkcode writePlain} follows nested objects and arrays. */
const PLAIN_DEPTH = 16;
const MIN_INT32 = -(2 ** 31);
const MAX_INT32 = 2 ** 31 - 1;
const ARRAY_INDEX = /^(?:0|[1-9][0-9]*)$/;

/**
 * Writes `value` in V8's serialization format (what `serialize` writes after its header,
 * and `deserialize` reads back alike) when it is made of what relais stores most: numbers,
 * strings of one-byte characters, booleans, `null`, `undefined`, and plain objects and
 * dense arrays of these. Answers `false`, having written part of it, for anything else.
 */
function writePlain(w: ByteWriter, value: unknown, depth: number): boolean {
  switch (typeof value) {
    case "number":
      if (
        Number.isInteger(value) && value >= MIN_INT32 && value <= MAX_INT32 && !Object.is(value, -0)
      ) {
        w.byte(0x49); // "I": a zigzag-encoded int32
        w.varint(((value << 1) ^ (value >> 31)) >>> 0);
      } else {
        w.byte(0x4e); // "N": a float64
        w.float64(value);
      }
      return true;
    case "string":
      return writeOneByteString(w, value);
    case "boolean":
      w.byte(value ? 0x54 : 0x46); // "T", "F"
      return true;
    case "undefined":
      w.byte(0x5f); // "_"
      return true;
    case "object": {
      if (value === null) {
        w.byte(0x30); // "0"
        return true;
      }
      if (depth >= PLAIN_DEPTH) return false;
      if (Array.isArray(value)) return writeDenseArray(w, value, depth);
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      w.byte(0x6f); // "o": an object, then its properties, then "{" and their count
      const names = Object.keys(value);
      for (const name of names) {
        // Index-like names are written as numbers: left to `serialize`.
        if (ARRAY_INDEX.test(name)) return false;
        if (!writeOneByteString(w, name)) return false;
        if (!writePlain(w, (value as Record<string, unknown>)[name], depth + 1)) return false;
      }
      w.byte(0x7b);
      w.varint(names.length);
      return true;
    }
    default:
      return false;
  }
}

function writeOneByteString(w: ByteWriter, text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0xff) return false;
  w.byte(0x22); // '"': a one-byte string, its length, its characters
  w.varint(text.length);
  w.latin1(text);
  return true;
}

function writeDenseArray(w: ByteWriter, list: unknown[], depth: number): boolean {
  // Holes and extra properties are left to `serialize`.
  if (Object.keys(list).length !== list.length) return false;
  w.byte(0x41); // "A": a dense array, its length, its elements, "$", no properties, its length
  w.varint(list.length);
  for (const item of list) if (!writePlain(w, item, depth + 1)) return false;
  w.byte(0x24);
  w.varint(0);
  w.varint(list.length);
  return true;
}

/** Decodes a stored Redis string into its value and versionstamp. */
export function decodeStored(stored: Uint8Array): { value: unknown; versionstamp: string } {
  const bytes = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
  const versionstamp = bytes.toString("latin1", 0, VERSIONSTAMP_LENGTH);
  const tag = bytes[VERSIONSTAMP_LENGTH];
  const payload = bytes.subarray(VERSIONSTAMP_LENGTH + 1);
  if (tag === U64_TAG) return { value: kvU64(BigInt(payload.toString("latin1"))), versionstamp };
  if (tag === V8_TAG) return { value: readNumber(payload) ?? deserialize(payload), versionstamp };
  throw new TypeError(`Cannot decode a stored value: unknown tag "${tag}"`);
}

/**
 * The number a V8-serialized value holds when it is one alone (a seq, a counter), read
 * without a deserializer; `undefined` for anything else.
 */
function readNumber(payload: Uint8Array): number | undefined {
  if (payload[0] !== 0xff || payload[1] !== V8_VERSION) return undefined;
  if (payload[2] === 0x49 && payload.length <= 8) {
    // "I": a zigzag-encoded int32 as a varint.
    let n = 0;
    let shift = 0;
    for (let i = 3; i < payload.length; i++) {
      const b = payload[i];
      n += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (b < 0x80) return i === payload.length - 1 ? (n % 2 ? -(n + 1) / 2 : n / 2) : undefined;
    }
    return undefined;
  }
  if (payload[2] === 0x4e && payload.length === 11) {
    return new DataView(payload.buffer, payload.byteOffset + 3, 8).getFloat64(0, true);
  }
  return undefined;
}
