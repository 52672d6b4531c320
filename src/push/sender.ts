/**
 * Sends one Web Push message: the payload encrypted for the subscription (RFC 8291,
 * `aes128gcm`) and signed with the VAPID keys (RFC 8292), both by the `web-push` library,
 * then posted with `fetch` (the library's own sending always speaks TLS through Node's
 * `https`, which a plain-HTTP endpoint of a development test cannot answer).
 *
 * Redirects are not followed: an endpoint is only ever the URL that passed the
 * allow-list.
 */

import webpush from "web-push";
import type { VapidKeys } from "./push_store.ts";

/** What one send may say about the delivery's urgency (RFC 8030 `Urgency`). */
export type PushUrgency = "very-low" | "low" | "normal" | "high";

/** One message to send. */
export interface PushMessage {
  endpoint: string;
  keys: { p256dh: string; auth: string };
  /** The plaintext payload (JSON text). */
  payload: string;
  /** Seconds the push service keeps it for an offline device. */
  ttlSeconds: number;
  urgency: PushUrgency;
  /** RFC 8030 `Topic`: a newer message with the same topic replaces an undelivered one. */
  topic?: string;
}

/** How a send went. */
export type PushOutcome =
  | { kind: "sent"; status: number }
  /** The subscription is gone (404, 410): forget it. */
  | { kind: "gone"; status: number }
  /** Worth trying again later (429, 5xx, network); `retryAfterMs` from `Retry-After`. */
  | { kind: "retry"; status?: number; error: string; retryAfterMs?: number }
  /** The push service refused it for good (another 4xx). */
  | { kind: "refused"; status: number; error: string };

/** Sends push messages. */
export interface PushSender {
  send(message: PushMessage, vapid: VapidKeys & { subject: string }): Promise<PushOutcome>;
}

/** The part of `web-push` used here. */
interface WebPushLibrary {
  generateRequestDetails(
    subscription: { endpoint: string; keys: { p256dh: string; auth: string } },
    payload: string,
    options: {
      vapidDetails: { subject: string; publicKey: string; privateKey: string };
      TTL: number;
      urgency: PushUrgency;
      topic?: string;
      contentEncoding: "aes128gcm";
    },
  ): {
    method: string;
    endpoint: string;
    headers: Record<string, string | number>;
    body: Uint8Array | null;
  };
}

const library = webpush as unknown as WebPushLibrary;

/** Options of {@linkcode createPushSender}. */
export interface PushSenderOptions {
  /** The longest a push service may take to answer (default 10 s). */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/** `Retry-After` (seconds or an HTTP date) in milliseconds from now, if given. */
function retryAfter(header: string | null, now: number): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Creates the sender over `fetch`. */
export function createPushSender(options: PushSenderOptions = {}): PushSender {
  const send = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 10_000;
  return {
    async send(message, vapid) {
      const details = library.generateRequestDetails(
        { endpoint: message.endpoint, keys: message.keys },
        message.payload,
        {
          vapidDetails: {
            subject: vapid.subject,
            publicKey: vapid.publicKey,
            privateKey: vapid.privateKey,
          },
          TTL: message.ttlSeconds,
          urgency: message.urgency,
          ...(message.topic ? { topic: message.topic } : {}),
          contentEncoding: "aes128gcm",
        },
      );
      const headers = new Headers();
      for (const [name, value] of Object.entries(details.headers)) {
        // fetch sets the length from the body itself.
        if (name.toLowerCase() !== "content-length") headers.set(name, String(value));
      }
      let response: Response;
      try {
        response = await send(details.endpoint, {
          method: details.method,
          headers,
          body: details.body ? new Uint8Array(details.body) : null,
          redirect: "manual",
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (error) {
        return {
          kind: "retry",
          error: `Cannot reach the push service: ${(error as Error).message}`,
        };
      }
      const text = (await response.text().catch(() => "")).slice(0, 200);
      const { status } = response;
      if (status >= 200 && status < 300) return { kind: "sent", status };
      if (status === 404 || status === 410) return { kind: "gone", status };
      const error = `The push service answered ${status}${text ? `: ${text}` : ""}`;
      if (status === 429 || status >= 500) {
        const after = retryAfter(response.headers.get("retry-after"), Date.now());
        return {
          kind: "retry",
          status,
          error,
          ...(after !== undefined ? { retryAfterMs: after } : {}),
        };
      }
      return { kind: "refused", status, error };
    },
  };
}

/** A fresh VAPID key pair (P-256), as base64url. */
export async function generateVapidKeys(): Promise<VapidKeys> {
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ]);
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const jwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
  const b64 = btoa(String.fromCharCode(...raw)).replaceAll("+", "-").replaceAll("/", "_")
    .replaceAll("=", "");
  return { publicKey: b64, privateKey: jwk.d! };
}
