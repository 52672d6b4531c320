/** Test helpers for auth: configs, token minting, signed contexts and a JWKS server. */

import { type JSONWebKeySet, type JWTPayload, SignJWT } from "jose";
import type { Config } from "../../src/config.ts";
import { AppError } from "../../src/errors.ts";

/** A fixed instant for clocks in tests: 2026-03-05T12:00:00Z, in epoch milliseconds. */
export const NOW = Date.UTC(2026, 2, 5, 12, 0, 0);
/** {@linkcode NOW} in epoch seconds. */
export const NOW_S = NOW / 1000;
/** The HS256 secret of {@linkcode authConfig}. */
export const TEST_SECRET = "test-secret-0123456789-abcdefghijklmnop";

/** An `auth` config section with a test JWT secret and overridable fields. */
export function authConfig(overrides: Partial<Config["auth"]> = {}): Config["auth"] {
  return {
    jwtSecret: TEST_SECRET,
    rolesClaim: "roles",
    structuresClaim: "structures",
    gatewayKeys: {},
    serviceKeys: [],
    generated: false,
    ...overrides,
  };
}

/** Signs `claims` as an HS256 JWT; `iat` and `exp` default around {@linkcode NOW}. */
export async function signHs256(
  claims: JWTPayload,
  options: { secret?: string; kid?: string } = {},
): Promise<string> {
  return await new SignJWT({ iat: NOW_S, exp: NOW_S + 3600, ...claims })
    .setProtectedHeader({ alg: "HS256", typ: "JWT", ...(options.kid ? { kid: options.kid } : {}) })
    .sign(new TextEncoder().encode(options.secret ?? TEST_SECRET));
}

/** Signs `claims` with an asymmetric private key (RS256 or ES256). */
export async function signAsymmetric(
  claims: JWTPayload,
  key: CryptoKey,
  header: { alg: "RS256" | "ES256"; kid?: string },
): Promise<string> {
  return await new SignJWT({ iat: NOW_S, exp: NOW_S + 3600, ...claims })
    .setProtectedHeader({ typ: "JWT", ...header })
    .sign(key);
}

function base64url(text: string): string {
  const bytes = new TextEncoder().encode(text);
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replaceAll("=", "");
}

/** An unsigned `alg: none` JWT, as an attacker would craft it. */
export function unsecuredToken(claims: JWTPayload): string {
  const header = base64url(JSON.stringify({ alg: "none", typ: "JWT" }));
  const payload = base64url(JSON.stringify({ iat: NOW_S, exp: NOW_S + 3600, ...claims }));
  return `${header}.${payload}.`;
}

/** How a signed-context header or its signature is encoded. */
export type Encoding = "hex" | "base64" | "base64url";

function encode(bytes: Uint8Array, encoding: Encoding): string {
  if (encoding === "hex") return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const b64 = btoa(String.fromCharCode(...bytes));
  return encoding === "base64"
    ? b64
    : b64.replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

/** The three gateway headers for `payload`, signed with `secret` under `kid`. */
export async function signContext(
  payload: Record<string, unknown>,
  options: {
    secret: string;
    kid: string;
    contextEncoding?: Exclude<Encoding, "hex">;
    signatureEncoding?: Encoding;
  },
): Promise<{ context: string; signature: string; kid: string }> {
  const context = encode(
    new TextEncoder().encode(JSON.stringify(payload)),
    options.contextEncoding ?? "base64url",
  );
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(options.secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(
    await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(context)),
  );
  return { context, signature: encode(mac, options.signatureEncoding ?? "hex"), kid: options.kid };
}

/** A JWKS served over real HTTP on 127.0.0.1 with a random port. */
export interface JwksServer {
  /** The JWKS URL. */
  url: string;
  /** How many requests the server answered. */
  readonly hits: number;
  /** Replaces the served key set (key rotation). */
  setKeys(jwks: JSONWebKeySet): void;
  /** Stops the server and waits until it is closed. */
  close(): Promise<void>;
}

/** Starts a {@linkcode JwksServer} serving `jwks` at `/.well-known/jwks.json`. */
export function startJwksServer(jwks: JSONWebKeySet): Promise<JwksServer> {
  let keys = jwks;
  let hits = 0;
  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen({ port }) {
        resolve({
          url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
          get hits() {
            return hits;
          },
          setKeys(next) {
            keys = next;
          },
          async close() {
            await server.shutdown();
          },
        });
      },
    }, (req) => {
      hits++;
      if (new URL(req.url).pathname !== "/.well-known/jwks.json") {
        return new Response("not found", { status: 404 });
      }
      return Response.json(keys);
    });
  });
}

/** Awaits `promise`, fails if it resolves, and returns its rejection as an `AppError`. */
export async function appErrorOf(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof AppError) return error;
    throw new Error(`Expected an AppError, got: ${error}`, { cause: error });
  }
  throw new Error("Expected a rejection, but the promise resolved");
}
