/**
 * Deno KV keys as order-preserving bytes (the FoundationDB tuple encoding, which Deno KV
 * itself uses): comparing two encoded keys byte by byte orders them as Deno KV does —
 * `Uint8Array` < `string` < `bigint` < `number` < `boolean`, byte strings and UTF-8
 * strings by their bytes, a shorter key before the longer keys it starts.
 *
 * The bytes are the members of the Redis index (`ZRANGEBYLEX` compares them with
 * `memcmp`) and the tail of each value's Redis key.
 */

const BYTES = 0x01;
const STRING = 0x02;
const NEG_INT_BIG = 0x0b;
const INT_ZERO = 0x14;
const POS_INT_BIG = 0x1d;
const DOUBLE = 0x21;
const FALSE = 0x26;
const TRUE = 0x27;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true });

/** A growable byte buffer, reused across the keys and values of one message. */
export class ByteWriter {
  #bytes: Uint8Array;
  #length = 0;

  constructor(capacity = 64) {
    this.#bytes = new Uint8Array(capacity);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#length;
  }

  /** Appends one byte. */
  byte(b: number): void {
    this.#reserve(1);
    this.#bytes[this.#length++] = b;
  }

  /** Appends `bytes` as they are. */
  bytes(bytes: Uint8Array): void {
    this.#reserve(bytes.length);
    this.#bytes.set(bytes, this.#length);
    this.#length += bytes.length;
  }

  /** Appends the characters of `text`, each below 0x100, one byte each. */
  latin1(text: string): void {
    this.#reserve(text.length);
    for (let i = 0; i < text.length; i++) this.#bytes[this.#length++] = text.charCodeAt(i);
  }

  /** Forgets the bytes written after the first `length`. */
  truncate(length: number): void {
    if (length < this.#length) this.#length = length;
  }

  /** Appends `n` (0 ≤ `n` < 2^32) as a base-128 varint, low groups first. */
  varint(n: number): void {
    this.#reserve(5);
    while (n >= 0x80) {
      this.#bytes[this.#length++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    this.#bytes[this.#length++] = n;
  }

  /** Appends `x` as eight little-endian bytes of a float64. */
  float64(x: number): void {
    doubleView.setFloat64(0, x, true);
    this.bytes(doubleBytes);
  }

  /** Appends `n` (0 ≤ `n` < 2^32) as four big-endian bytes. */
  u32(n: number): void {
    this.#reserve(4);
    const b = this.#bytes;
    b[this.#length++] = (n >>> 24) & 0xff;
    b[this.#length++] = (n >>> 16) & 0xff;
    b[this.#length++] = (n >>> 8) & 0xff;
    b[this.#length++] = n & 0xff;
  }

  /** Keeps four bytes for a length written later by {@linkcode patchU32}; answers where. */
  holdU32(): number {
    this.u32(0);
    return this.#length - 4;
  }

  /** Writes `n` as four big-endian bytes at `at` (kept by {@linkcode holdU32}). */
  patchU32(at: number, n: number): void {
    const b = this.#bytes;
    b[at] = (n >>> 24) & 0xff;
    b[at + 1] = (n >>> 16) & 0xff;
    b[at + 2] = (n >>> 8) & 0xff;
    b[at + 3] = n & 0xff;
  }

  /** Appends `bytes` with each 0x00 escaped as 0x00 0xFF, then the 0x00 terminator. */
  escaped(bytes: Uint8Array): void {
    this.#reserve(bytes.length * 2 + 1);
    for (const b of bytes) {
      this.#bytes[this.#length++] = b;
      if (b === 0) this.#bytes[this.#length++] = 0xff;
    }
    this.#bytes[this.#length++] = 0;
  }

  /**
   * Appends the UTF-8 bytes of `text`, each 0x00 escaped as 0x00 0xFF, then the 0x00
   * terminator; ASCII without a NUL (most keys) is copied as it is.
   */
  escapedString(text: string): void {
    const n = text.length;
    this.#reserve(n + 1);
    const b = this.#bytes;
    const start = this.#length;
    for (let i = 0; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c === 0 || c >= 0x80) {
        this.#length = start;
        return this.escaped(utf8.encode(text));
      }
      b[start + i] = c;
    }
    b[start + n] = 0;
    this.#length = start + n + 1;
  }

  #reserve(n: number): void {
    if (this.#length + n <= this.#bytes.length) return;
    const grown = new Uint8Array(Math.max(this.#bytes.length * 2, this.#length + n));
    grown.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = grown;
  }

  /** A view of the bytes written from `from` on (valid until the next write). */
  view(from = 0): Uint8Array {
    return this.#bytes.subarray(from, this.#length);
  }

  /** A copy of the bytes written. */
  done(): Uint8Array {
    return this.#bytes.slice(0, this.#length);
  }
}

/** The big-endian bytes of `n` (`n` > 0), as few as hold it. */
function bigIntBytes(n: bigint): number[] {
  const out: number[] = [];
  while (n > 0n) {
    out.unshift(Number(n & 0xffn));
    n >>= 8n;
  }
  return out;
}

function encodeBigInt(w: ByteWriter, n: bigint): void {
  if (n === 0n) return w.byte(INT_ZERO);
  const magnitude = bigIntBytes(n < 0n ? -n : n);
  const length = magnitude.length;
  if (length > 255) throw new TypeError(`Key part "${n}" is too large`);
  if (n > 0n) {
    if (length <= 8) w.byte(INT_ZERO + length);
    else {
      w.byte(POS_INT_BIG);
      w.byte(length);
    }
    for (const b of magnitude) w.byte(b);
    return;
  }
  // Negative: the ones' complement of the magnitude, so that larger magnitudes sort first.
  if (length <= 8) w.byte(INT_ZERO - length);
  else {
    w.byte(NEG_INT_BIG);
    w.byte(length ^ 0xff);
  }
  for (const b of magnitude) w.byte(b ^ 0xff);
}

const doubleBytes = new Uint8Array(8);
const doubleView = new DataView(doubleBytes.buffer);

function encodeDouble(w: ByteWriter, x: number): void {
  doubleView.setFloat64(0, x);
  w.byte(DOUBLE);
  // Negative numbers: every bit flipped; others: the sign bit set.
  if (doubleBytes[0] & 0x80) { for (let i = 0; i < 8; i++) w.byte(doubleBytes[i] ^ 0xff); }
  else {
    w.byte(doubleBytes[0] ^ 0x80);
    for (let i = 1; i < 8; i++) w.byte(doubleBytes[i]);
  }
}

/**
 * Appends the encoding of a Deno KV key to `w`; throws a `TypeError` on a part Deno KV
 * does not take.
 */
export function encodeKeyInto(w: ByteWriter, key: Deno.KvKey): void {
  for (const part of key) {
    if (typeof part === "string") {
      w.byte(STRING);
      w.escapedString(part);
    } else if (typeof part === "number") {
      encodeDouble(w, part);
    } else if (part instanceof Uint8Array) {
      w.byte(BYTES);
      w.escaped(part);
    } else if (typeof part === "bigint") {
      encodeBigInt(w, part);
    } else if (typeof part === "boolean") {
      w.byte(part ? TRUE : FALSE);
    } else {
      throw new TypeError(`Cannot encode key part "${String(part)}": unsupported type`);
    }
  }
}

/** Encodes a Deno KV key; throws a `TypeError` on a part Deno KV does not take. */
export function encodeKey(key: Deno.KvKey): Uint8Array {
  const w = new ByteWriter();
  encodeKeyInto(w, key);
  return w.done();
}

/** Reads an escaped byte string starting at `at`: its bytes and where the next part starts. */
function readEscaped(bytes: Uint8Array, at: number): [Uint8Array, number] {
  const out: number[] = [];
  for (let i = at; i < bytes.length; i++) {
    if (bytes[i] !== 0) {
      out.push(bytes[i]);
    } else if (bytes[i + 1] === 0xff) {
      out.push(0);
      i++;
    } else {
      return [Uint8Array.from(out), i + 1];
    }
  }
  throw new TypeError("Cannot decode key: unterminated byte string");
}

function readBigInt(bytes: Uint8Array, at: number, tag: number): [bigint, number] {
  let length: number;
  let from = at;
  const negative = tag < INT_ZERO;
  if (tag === POS_INT_BIG) length = bytes[from++];
  else if (tag === NEG_INT_BIG) length = bytes[from++] ^ 0xff;
  else length = Math.abs(tag - INT_ZERO);
  let n = 0n;
  for (let i = 0; i < length; i++) {
    n = (n << 8n) | BigInt(negative ? bytes[from + i] ^ 0xff : bytes[from + i]);
  }
  return [negative ? -n : n, from + length];
}

/** Decodes bytes made by {@linkcode encodeKey} back into the key. */
export function decodeKey(bytes: Uint8Array): Deno.KvKey {
  const key: Deno.KvKeyPart[] = [];
  let at = 0;
  while (at < bytes.length) {
    const tag = bytes[at++];
    if (tag === BYTES) {
      const [part, next] = readEscaped(bytes, at);
      key.push(part);
      at = next;
    } else if (tag === STRING) {
      const [part, next] = readEscaped(bytes, at);
      key.push(fromUtf8.decode(part));
      at = next;
    } else if (tag >= NEG_INT_BIG && tag <= POS_INT_BIG) {
      const [part, next] = readBigInt(bytes, at, tag);
      key.push(part);
      at = next;
    } else if (tag === DOUBLE) {
      // A copy (a Node `Buffer`'s `slice` would share, and its `buffer` be a pool).
      const raw = Uint8Array.from(bytes.subarray(at, at + 8));
      if (raw[0] & 0x80) raw[0] ^= 0x80;
      else for (let i = 0; i < 8; i++) raw[i] ^= 0xff;
      key.push(new DataView(raw.buffer).getFloat64(0));
      at += 8;
    } else if (tag === FALSE || tag === TRUE) {
      key.push(tag === TRUE);
    } else {
      throw new TypeError(`Cannot decode key: unknown tag "${tag}"`);
    }
  }
  return key;
}

/** Compares two encoded keys as `memcmp` (and so Redis's lexicographic ranges) does. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** Bounds of a lexicographic range of encoded keys: `[from` inclusive, `to)` exclusive. */
export interface KeyRange {
  /** Inclusive lower bound, or `undefined` for the start of the keyspace. */
  from?: Uint8Array;
  /** Whether `from` itself is excluded. */
  fromExclusive?: boolean;
  /** Exclusive upper bound, or `undefined` for the end of the keyspace. */
  to?: Uint8Array;
}

function concat(a: Uint8Array, b: number): Uint8Array {
  const out = new Uint8Array(a.length + 1);
  out.set(a);
  out[a.length] = b;
  return out;
}

/**
 * The range of encoded keys a `list` selector covers, as Deno KV reads it: a prefix
 * covers the keys that start with it (not the prefix itself); `start` is inclusive,
 * `end` exclusive.
 */
export function selectorRange(selector: Deno.KvListSelector): KeyRange {
  const s = selector as { prefix?: Deno.KvKey; start?: Deno.KvKey; end?: Deno.KvKey };
  if (s.prefix) {
    const prefix = encodeKey(s.prefix);
    // Every part starts with a tag byte below 0xff: the prefix's keys lie before this.
    const prefixEnd = concat(prefix, 0xff);
    const range: KeyRange = prefix.length
      ? { from: prefix, fromExclusive: true, to: prefixEnd }
      : {};
    if (s.start) {
      const start = encodeKey(s.start);
      if (compareBytes(start, prefix) <= 0 || compareBytes(start, prefixEnd) >= 0) {
        throw new TypeError("Start key is not in the keyspace defined by prefix");
      }
      range.from = start;
      range.fromExclusive = false;
    }
    if (s.end) {
      const end = encodeKey(s.end);
      if (compareBytes(end, prefix) <= 0 || compareBytes(end, prefixEnd) >= 0) {
        throw new TypeError("End key is not in the keyspace defined by prefix");
      }
      range.to = end;
    }
    return range;
  }
  if (s.start && s.end) return { from: encodeKey(s.start), to: encodeKey(s.end) };
  throw new TypeError("Cannot list: the selector needs a prefix, or a start and an end");
}
