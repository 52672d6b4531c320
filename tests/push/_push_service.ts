/**
 * A local push service for tests: an in-process HTTP server on 127.0.0.1 that accepts Web
 * Push messages the way a browser's push service does, after checking them as one must:
 * the VAPID `Authorization` header (an ES256 JWT for the endpoint's origin, not expired,
 * verified with the key it names) and the `aes128gcm` body, decrypted with the
 * subscription's own private key and auth secret (RFC 8291, written out with WebCrypto).
 */

/** One subscription of the fake browser: its keys, and what reached it. */
export interface Subscriber {
  name: string;
  endpoint: string;
  /** The body of `POST /v1/me/push-subscriptions`. */
  json: { endpoint: string; keys: { p256dh: string; auth: string } };
  /** The status the push service answers this subscription with. */
  status: number;
  /** Every request, in order, accepted or not. */
  received: ReceivedPush[];
}

/** One push as the service saw it. */
export interface ReceivedPush {
  at: number;
  /** The answer given. */
  status: number;
  /** The decrypted payload, parsed. */
  payload: Record<string, unknown>;
  /** The VAPID public key of the `Authorization` header. */
  vapidKey: string;
  claims: { aud: string; exp: number; sub: string };
  headers: Headers;
}

/** The local push service. */
export interface PushService {
  origin: string;
  subscriber(name: string, status?: number): Promise<Subscriber>;
  /** Waits until `subscriber` received `count` pushes (fails after `timeoutMs`). */
  waitFor(subscriber: Subscriber, count: number, timeoutMs?: number): Promise<ReceivedPush[]>;
  /** Requests that failed a check (bad signature, bad encryption…): should stay empty. */
  rejected: string[];
  close(): Promise<void>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Bytes as unpadded base64url. */
export function b64u(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replaceAll("=", "");
}

/** Base64url text as bytes. */
export function fromB64u(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replaceAll("-", "+").replaceAll("_", "/");
  return Uint8Array.from(atob(b64 + "=".repeat((4 - b64.length % 4) % 4)), (c) => c.charCodeAt(0));
}

const concat = (...parts: Uint8Array[]): Uint8Array<ArrayBuffer> => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

async function hmac(
  key: Uint8Array<ArrayBuffer>,
  data: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer>> {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, data));
}

/** Checks `vapid t=<jwt>, k=<key>` for `origin`; answers the claims and the key. */
async function checkVapid(header: string | null, origin: string) {
  const match = /^vapid t=([\w-]+\.[\w-]+\.[\w-]+),\s*k=([\w-]+)$/.exec(header ?? "");
  if (!match) throw new Error(`Expected a VAPID Authorization header, got "${header}"`);
  const [, jwt, k] = match;
  const [head, body, signature] = jwt.split(".");
  const key = await crypto.subtle.importKey(
    "raw",
    fromB64u(k),
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["verify"],
  );
  const valid = await crypto.subtle.verify(
    { name: "ECDSA", hash: "SHA-256" },
    key,
    fromB64u(signature),
    encoder.encode(`${head}.${body}`),
  );
  if (!valid) throw new Error("The VAPID signature does not verify with its key");
  const header_ = JSON.parse(decoder.decode(fromB64u(head)));
  if (header_.alg !== "ES256") throw new Error(`Expected ES256, got "${header_.alg}"`);
  const claims = JSON.parse(decoder.decode(fromB64u(body)));
  if (claims.aud !== origin) throw new Error(`Expected aud "${origin}", got "${claims.aud}"`);
  const now = Date.now() / 1000;
  if (!(claims.exp > now && claims.exp <= now + 86_400)) {
    throw new Error(`Expected exp within the next 24 h, got ${claims.exp}`);
  }
  if (typeof claims.sub !== "string") throw new Error("Expected a sub claim");
  return { claims, vapidKey: k };
}

/** Decrypts an `aes128gcm` Web Push body (RFC 8188 + RFC 8291) for one subscriber. */
async function decrypt(
  body: Uint8Array<ArrayBuffer>,
  keys: {
    privateKey: CryptoKey;
    publicKey: Uint8Array<ArrayBuffer>;
    auth: Uint8Array<ArrayBuffer>;
  },
): Promise<string> {
  const salt = body.slice(0, 16);
  const rs = new DataView(body.buffer, body.byteOffset + 16, 4).getUint32(0);
  const idlen = body[20];
  const senderKey = body.slice(21, 21 + idlen);
  const ciphertext = body.slice(21 + idlen);
  if (idlen !== 65) throw new Error(`Expected a 65-byte key id, got ${idlen}`);
  if (ciphertext.length > rs) throw new Error("Expected a single record");
  const sender = await crypto.subtle.importKey(
    "raw",
    senderKey,
    { name: "ECDH", namedCurve: "P-256" },
    false,
    [],
  );
  const shared = new Uint8Array(
    await crypto.subtle.deriveBits({ name: "ECDH", public: sender }, keys.privateKey, 256),
  );
  // RFC 8291 section 3.4: the input keying material from the auth secret and both keys.
  const prkKey = await hmac(keys.auth, shared);
  const keyInfo = concat(
    encoder.encode("WebPush: info\0"),
    keys.publicKey,
    senderKey,
    new Uint8Array([1]),
  );
  const ikm = await hmac(prkKey, keyInfo);
  // RFC 8188 section 2.2: the content encryption key and nonce.
  const prk = await hmac(salt, ikm);
  const cek = (await hmac(prk, encoder.encode("Content-Encoding: aes128gcm\0\x01"))).slice(0, 16);
  const nonce = (await hmac(prk, encoder.encode("Content-Encoding: nonce\0\x01"))).slice(0, 12);
  const aes = await crypto.subtle.importKey("raw", cek, "AES-GCM", false, ["decrypt"]);
  const plain = new Uint8Array(
    await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce }, aes, ciphertext),
  );
  // The last record ends with the delimiter 0x02, then zero padding.
  let end = plain.length - 1;
  while (end >= 0 && plain[end] === 0) end--;
  if (plain[end] !== 2) throw new Error("Expected the last record's padding delimiter");
  return decoder.decode(plain.slice(0, end));
}

/** The largest encrypted body push services must accept, and the most this one does. */
const MAX_BODY_BYTES = 4096;

/** Starts the local push service. */
export function startPushService(): PushService {
  const subscribers = new Map<string, Subscriber & { keys: Parameters<typeof decrypt>[1] }>();
  const rejected: string[] = [];
  const waiters = new Set<() => void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const name = decodeURIComponent(url.pathname.replace(/^\/push\//, ""));
    const subscriber = subscribers.get(name);
    if (req.method !== "POST" || !subscriber) return new Response("unknown", { status: 404 });
    try {
      if (req.headers.get("content-encoding") !== "aes128gcm") {
        throw new Error(`Expected aes128gcm, got "${req.headers.get("content-encoding")}"`);
      }
      if (!/^\d+$/.test(req.headers.get("ttl") ?? "")) throw new Error("Expected a TTL header");
      const { claims, vapidKey } = await checkVapid(req.headers.get("authorization"), origin);
      const body = new Uint8Array(await req.arrayBuffer());
      // RFC 8030 section 7.2: a push service may refuse a payload over 4096 octets.
      if (body.length > MAX_BODY_BYTES) {
        rejected.push(`${name}: ${body.length} bytes, over ${MAX_BODY_BYTES}`);
        for (const wake of waiters) wake();
        return new Response("Payload Too Large", { status: 413 });
      }
      const payload = JSON.parse(await decrypt(body, subscriber.keys));
      subscriber.received.push({
        at: Date.now(),
        status: subscriber.status,
        payload,
        vapidKey,
        claims,
        headers: req.headers,
      });
      for (const wake of waiters) wake();
      return new Response(null, { status: subscriber.status });
    } catch (error) {
      rejected.push(`${name}: ${(error as Error).message}`);
      for (const wake of waiters) wake();
      return new Response((error as Error).message, { status: 400 });
    }
  });
  const origin = `http://127.0.0.1:${server.addr.port}`;

  return {
    origin,
    rejected,
    async subscriber(name, status = 201) {
      const pair = await crypto.subtle.generateKey(
        { name: "ECDH", namedCurve: "P-256" },
        true,
        ["deriveBits"],
      ) as CryptoKeyPair;
      const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
      const auth = crypto.getRandomValues(new Uint8Array(16));
      const endpoint = `${origin}/push/${encodeURIComponent(name)}`;
      const subscriber = {
        name,
        endpoint,
        json: { endpoint, keys: { p256dh: b64u(publicKey), auth: b64u(auth) } },
        status,
        received: [] as ReceivedPush[],
        keys: { privateKey: pair.privateKey, publicKey, auth },
      };
      subscribers.set(name, subscriber);
      return subscriber;
    },
    waitFor(subscriber, count, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (rejected.length > 0) {
            finish();
            reject(new Error(`The push service rejected a push: ${rejected.join("; ")}`));
          } else if (subscriber.received.length >= count) {
            finish();
            resolve(subscriber.received);
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(
            new Error(
              `Timed out waiting for ${count} pushes to "${subscriber.name}" (got ${subscriber.received.length})`,
            ),
          );
        }, timeoutMs);
        const finish = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async close() {
      await server.shutdown();
    },
  };
}
