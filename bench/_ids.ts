/**
 * Event ids as the platform's emitters make them: UUID version 7 (RFC 9562), whose first
 * 48 bits are the Unix time in milliseconds, so that ids made later sort later (the
 * fixtures' `0193a1e2-7c00-7000-…`). The store keeps events by id: ids made one after the
 * other land next to each other, where random (version 4) ids each land on a page of
 * their own.
 */

/** A version 7 UUID for the time `ms` (now by default): 48 bits of time, 74 random bits. */
export function uuidv7(ms: number = Date.now()): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  const time = Math.max(0, Math.floor(ms));
  for (let i = 0; i < 6; i++) b[i] = Math.floor(time / 2 ** (8 * (5 - i))) % 256;
  b[6] = 0x70 | (b[6] & 0x0f);
  b[8] = 0x80 | (b[8] & 0x3f);
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}
