/**
 * Ids as the platform makes them. Events: UUID version 7 (RFC 9562), whose first 48 bits
 * are the Unix time in milliseconds, so that ids made later sort later (the fixtures'
 * `0193a1e2-7c00-7000-…`); the store keeps events by id, and ids made one after the other
 * land next to each other, where random (version 4) ids each land on a page of their own.
 * Users: random-looking UUIDs (the directory fixture's `7b1d0c3e-2f4a-…`), so that an
 * audience listed by user number is in no key order, as a real one.
 */

import { uuidOf } from "../src/uuid.ts";

/** A version 7 UUID for the time `ms` (now by default): 48 bits of time, 74 random bits. */
export function uuidv7(ms: number = Date.now()): string {
  return uuidOf(crypto.getRandomValues(new Uint8Array(16)), { version: 7, ms });
}

/** A 32-bit mix of `x` (a bijection: distinct inputs give distinct outputs). */
function mix32(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * User `i` of the bench group `prefix`: the group's name, then a UUID-shaped id that looks
 * random and is the same in every process (the load generators and the publisher name the
 * same users). Users `0, 1, 2, …` are in no key order.
 */
export function userId(prefix: string, i: number): string {
  const words = [mix32(i), mix32(i ^ 0x5bd1e995), mix32(i + 0x27d4eb2f), mix32(~i)];
  const bytes = new Uint8Array(16);
  const view = new DataView(bytes.buffer);
  words.forEach((w, k) => view.setUint32(4 * k, w));
  return `${prefix}-${uuidOf(bytes, { version: 4 })}`;
}

/** Users `from..to` of the bench group `prefix` ({@linkcode userId}). */
export function userIds(spec: { prefix: string; from: number; to: number }): string[] {
  const out: string[] = [];
  for (let i = spec.from; i < spec.to; i++) out.push(userId(spec.prefix, i));
  return out;
}
