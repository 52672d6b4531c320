/**
 * Browser push subscriptions: the `PushSubscription` a browser gives (`endpoint`,
 * `keys.p256dh`, `keys.auth`), validated at registration, and the policy of which
 * endpoints relais ever posts to.
 *
 * An endpoint is a URL the client chooses, so it is checked against an allow-list of push
 * services: `https` on one of `RELAIS_PUSH_ENDPOINT_HOSTS` (`*.example.com` names every
 * subdomain), and in development also `http://127.0.0.1:<port>` for local tests.
 */

import * as v from "valibot";
import { decodeBase64Any, encodeHex } from "../auth/_encoding.ts";

/** The default push services: the major browsers'. */
export const DEFAULT_PUSH_ENDPOINT_HOSTS = [
  "fcm.googleapis.com",
  "updates.push.services.mozilla.com",
  "*.notify.windows.com",
  "web.push.apple.com",
] as const;

/** Which endpoints a subscription may name. */
export interface EndpointPolicy {
  /** Host names, exact or `*.suffix`; always over `https`. */
  hosts: readonly string[];
  /** Development: `http://127.0.0.1:<port>` is allowed as well. */
  allowLoopback: boolean;
}

/** Longest endpoint accepted (browsers' are a few hundred characters). */
export const MAX_ENDPOINT_LENGTH = 2048;

/** Whether `host` matches one pattern: exact, or `*.suffix` for any subdomain of it. */
function hostMatches(host: string, pattern: string): boolean {
  const p = pattern.toLowerCase();
  if (p.startsWith("*.")) return host.endsWith(p.slice(1)) && host.length > p.length - 1;
  return host === p;
}

/** Why `endpoint` is refused, or `undefined` when relais may post to it. */
export function endpointRefusal(endpoint: string, policy: EndpointPolicy): string | undefined {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return "expected a URL";
  }
  if (url.username || url.password) return "expected a URL without credentials";
  if (policy.allowLoopback && url.protocol === "http:" && url.hostname === "127.0.0.1") {
    return undefined;
  }
  if (url.protocol !== "https:") return 'expected an "https://" URL of a push service';
  const host = url.hostname.toLowerCase();
  if (!policy.hosts.some((p) => hostMatches(host, p))) {
    return `expected a push service among ${policy.hosts.join(", ")}; "${
      host.slice(0, 100)
    }" is not one`;
  }
  return undefined;
}

const base64url = (bytes: number, what: string) =>
  v.pipe(
    v.string(),
    v.regex(/^[A-Za-z0-9_-]+={0,2}$/, `expected ${what} in base64url`),
    v.check(
      (s) => Math.floor(s.replace(/=+$/, "").length * 3 / 4) === bytes,
      `expected ${what} of ${bytes} bytes`,
    ),
  );

/** P-256's field prime and the `b` of its curve `y² = x³ - 3x + b` (SEC 2, secp256r1). */
const P256_P = 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n;
const P256_B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;

/**
 * Whether 65 bytes are an uncompressed point of P-256, as a browser's `p256dh` is. Checked
 * at registration: encrypting for anything else fails at every attempt of every push.
 */
function isP256Point(bytes: Uint8Array | undefined): boolean {
  if (bytes?.length !== 65 || bytes[0] !== 0x04) return false;
  const int = (from: number) => BigInt(`0x${encodeHex(bytes.subarray(from, from + 32))}`);
  const x = int(1);
  const y = int(33);
  if (x >= P256_P || y >= P256_P) return false;
  const mod = (n: bigint) => ((n % P256_P) + P256_P) % P256_P;
  return mod(y * y) === mod(x * x * x - 3n * x + P256_B);
}

/** The body of `POST /v1/me/push-subscriptions`, for the endpoints of `policy`. */
export function pushSubscriptionSchema(policy: EndpointPolicy) {
  return v.object({
    endpoint: v.pipe(
      v.string(),
      v.minLength(1, "expected an endpoint"),
      v.maxLength(MAX_ENDPOINT_LENGTH, `expected at most ${MAX_ENDPOINT_LENGTH} characters`),
      v.rawCheck(({ dataset, addIssue }) => {
        if (!dataset.typed) return;
        const refusal = endpointRefusal(dataset.value, policy);
        if (refusal) addIssue({ message: refusal });
      }),
    ),
    /** What the browser says, ignored: a push service answers 404/410 once it expired. */
    expirationTime: v.optional(v.nullable(v.number())),
    keys: v.object({
      p256dh: v.pipe(
        base64url(65, "a P-256 public key"),
        v.check((s) => isP256Point(decodeBase64Any(s)), "expected a P-256 public key"),
      ),
      auth: base64url(16, "an auth secret"),
    }),
  });
}

/** The body of `DELETE /v1/me/push-subscriptions`: the endpoint to forget. */
export const PushUnsubscribeSchema = v.object({
  endpoint: v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_ENDPOINT_LENGTH)),
});

/** A subscription as stored. */
export interface PushSubscriptionRecord {
  /** A stable id of the endpoint (a hash): tasks name the subscription by it. */
  id: string;
  endpoint: string;
  keys: { p256dh: string; auth: string };
  /** When it was registered (or registered again), epoch ms. */
  createdAt: number;
}

/** The id of an endpoint: the first 128 bits of its SHA-256, base64url. */
export async function endpointId(endpoint: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(endpoint)),
  );
  return toBase64Url(digest.slice(0, 16));
}

/** Bytes as unpadded base64url. */
export function toBase64Url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replaceAll("=", "");
}
