/**
 * UUIDs from 16 bytes (RFC 9562): their text, and the layouts relais gives the ids it
 * derives. Version 7 puts the Unix time in milliseconds in the first 48 bits, so that ids
 * made later sort later; versions 4 (random) and 8 (custom) keep the bytes given.
 */

/** The latest time a version 7 UUID holds: 48 bits of milliseconds. */
export const MAX_UUID_MS = 2 ** 48 - 1;

/**
 * Writes into a copy of `bytes` the version and the variant, and for version 7 the time
 * `ms` in its first 48 bits; answers the UUID's text.
 */
export function uuidOf(
  bytes: Uint8Array,
  layout: { version: 4 | 8 } | { version: 7; ms: number },
): string {
  const b = bytes.slice(0, 16);
  if (layout.version === 7) {
    const ms = Math.min(MAX_UUID_MS, Math.max(0, Math.floor(layout.ms)));
    for (let i = 0; i < 6; i++) b[i] = Math.floor(ms / 2 ** (8 * (5 - i))) % 256;
  }
  b[6] = (layout.version << 4) | (b[6] & 0x0f);
  b[8] = 0x80 | (b[8] & 0x3f);
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}
