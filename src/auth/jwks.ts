/**
 * A remote JWKS with its keys cached: the key resolver of JWKS-verified tokens.
 *
 * jose's `createRemoteJWKSet` fetches again on every token once a fetch failed (a failed
 * fetch starts no cooldown) and stops serving the keys it had once they are older than
 * its cache age and the endpoint does not answer. This one keeps jose's key matching
 * (`createLocalJWKSet`) and changes the fetching: at most one fetch per cooldown, failed
 * or not, whatever the tokens presented; a stale key set is refreshed in the background
 * while it keeps serving, and is only replaced by a valid one.
 */

import { createLocalJWKSet, errors as joseErrors, type JWTVerifyGetKey } from "jose";

/** Options of {@linkcode createRemoteJwks}. */
export interface RemoteJwksOptions {
  /** The clock, in epoch milliseconds. */
  now?: () => number;
  /** Age after which the key set is refreshed, in milliseconds (default 10 min). */
  maxAgeMs?: number;
  /** Least time between two fetches, successful or not, in milliseconds (default 30 s). */
  cooldownMs?: number;
  /** How long a fetch may take, body included, in milliseconds (default 5 s). */
  timeoutMs?: number;
}

/**
 * The key resolver of the JWKS at `url`. It throws jose's `JWKSNoMatchingKey` for a key
 * id the key set does not hold, and other errors when no key set could be fetched.
 */
export function createRemoteJwks(url: URL, options: RemoteJwksOptions = {}): JWTVerifyGetKey {
  const now = options.now ?? Date.now;
  const maxAgeMs = options.maxAgeMs ?? 10 * 60_000;
  const cooldownMs = options.cooldownMs ?? 30_000;
  const timeoutMs = options.timeoutMs ?? 5_000;
  let keys: ReturnType<typeof createLocalJWKSet> | undefined;
  let fetchedAt = -Infinity;
  let attemptedAt = -Infinity;
  let lastError: unknown;
  let pending: Promise<void> | undefined;

  async function load(): Promise<void> {
    const res = await fetch(url, {
      redirect: "manual",
      headers: { accept: "application/json, application/jwk-set+json" },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new Error(`The JWKS endpoint answered ${res.status}`);
    }
    // Throws on anything but a key set: the keys in use stay.
    keys = createLocalJWKSet(await res.json());
    fetchedAt = now();
  }

  /** Fetches the key set, once for all concurrent callers. */
  function refresh(): Promise<void> {
    if (!pending) {
      attemptedAt = now();
      pending = load().then(
        () => {
          lastError = undefined;
        },
        (error) => {
          lastError = error;
          throw error;
        },
      ).finally(() => pending = undefined);
    }
    return pending;
  }

  const coolingDown = () => now() - attemptedAt < cooldownMs;

  return async (header, token) => {
    if (!keys) {
      if (pending || !coolingDown()) await refresh();
      // The last fetch failed within the cooldown: refused without fetching again.
      else throw lastError ?? new Error("The JWKS endpoint answered no key set");
    } else if (now() - fetchedAt >= maxAgeMs && !pending && !coolingDown()) {
      // Keeps verifying with the keys it has meanwhile: an endpoint that hangs or fails
      // must not stop tokens of keys it published.
      refresh().catch(() => {});
    }
    const current = keys!;
    try {
      return await current(header, token);
    } catch (error) {
      if (!(error instanceof joseErrors.JWKSNoMatchingKey)) throw error;
      // An unknown key id may be a rotated key: fetched again, but once per cooldown, so
      // a flood of made-up key ids costs the endpoint one fetch.
      if (!pending && coolingDown()) throw error;
      await refresh();
      return await keys!(header, token);
    }
  };
}
