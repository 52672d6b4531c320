/**
 * Service API keys with scopes, compared in constant time.
 *
 * Keys are never logged or echoed: error messages name the key's owner, not the key.
 */

import type { ServiceKey } from "../config.ts";
import type { ServicePrincipal } from "./principal.ts";
import { sha256 } from "./_encoding.ts";

/** A presented key longer than this is refused without hashing it. */
const MAX_KEY_CHARS = 1024;

/** Verifies presented service keys; built by {@linkcode createServiceKeys}. */
export interface ServiceKeys {
  /** The service owning `presented`, or `undefined` if no configured key matches. */
  verify(presented: string): Promise<ServicePrincipal | undefined>;
}

/** Compares two equal-length digests without branching on their content. */
function digestsEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ (b[i] ?? 0);
  return diff === 0;
}

/**
 * Builds the service key verifier. Both sides are hashed with SHA-256 first, so the
 * comparison always runs over 32 bytes whatever the key lengths, and every configured
 * key is compared on each call so timing reveals neither which key matched nor where.
 */
export function createServiceKeys(keys: ServiceKey[]): ServiceKeys {
  const entries = Promise.all(
    keys.map(async (k) => ({ name: k.name, scopes: [...k.scopes], digest: await sha256(k.key) })),
  );
  // Keys that matched once skip the hash next time (it was a tenth of a publish's CPU).
  // Only matching keys are kept, so this holds at most one entry per configured key, and
  // an unknown key always takes the full constant-time path below.
  const verified = new Map<string, { name: string; scopes: ServicePrincipal["scopes"] }>();
  return {
    async verify(presented) {
      if (!presented || presented.length > MAX_KEY_CHARS) return undefined;
      const known = verified.get(presented);
      if (known) return { kind: "service", name: known.name, scopes: [...known.scopes] };
      const digest = await sha256(presented);
      let found: { name: string; scopes: ServicePrincipal["scopes"] } | undefined;
      for (const entry of await entries) {
        const equal = digestsEqual(entry.digest, digest);
        if (equal && !found) found = entry;
      }
      if (found) verified.set(presented, found);
      return found && { kind: "service", name: found.name, scopes: [...found.scopes] };
    },
  };
}
