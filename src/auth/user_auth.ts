/**
 * End-user authentication: JWTs (HS256 secret or JWKS with RS256/ES256) and the API
 * gateway's HMAC-signed context.
 *
 * Every failure is an `unauthenticated` {@linkcode AppError} whose message names the
 * reason but never contains the token, the signature or a secret. A JWKS endpoint that
 * cannot be fetched is `unavailable` instead: the caller's credential may be fine.
 */

import {
  decodeProtectedHeader,
  errors as joseErrors,
  type JWTPayload,
  jwtVerify,
  type JWTVerifyGetKey,
  SignJWT,
} from "jose";
import * as v from "valibot";
import type { Config } from "../config.ts";
import { AppError } from "../errors.ts";
import { MAX_USER_ID_CHARS, UserIdSchema } from "../schemas/user_id.ts";
import { fieldIssues } from "../validate.ts";
import { createRemoteJwks } from "./jwks.ts";
import type { UserPrincipal } from "./principal.ts";
import { decodeBase64Any, decodeHex, quoted } from "./_encoding.ts";

/** Longest signed context's lifetime (`exp - iat`) the gateway may issue, in seconds. */
export const SIGNED_CONTEXT_MAX_LIFETIME_S = 300;
/** How far in the future a signed context's `iat` may be (gateway clock skew), in seconds. */
export const SIGNED_CONTEXT_MAX_SKEW_S = 30;

const MAX_TOKEN_CHARS = 16 * 1024;
/** Verified HS256 tokens kept by default (about one process's connections). */
const VERIFIED_TOKENS = 20_000;
/** The longest token kept verified, in characters (typical ones take a few hundred). */
const VERIFIED_TOKEN_CHARS = 2048;
const MAX_CONTEXT_CHARS = 16 * 1024;
const ASYMMETRIC_ALGS = ["RS256", "ES256"] as const;

/** Options of {@linkcode createUserAuth}. */
export interface UserAuthOptions {
  /** Key resolver used instead of fetching `cfg.jwksUrl` (tests, custom caching). */
  jwks?: JWTVerifyGetKey;
  /** The clock, in epoch milliseconds. */
  now?: () => number;
  /** Clock skew tolerated on `exp` and `nbf` of JWTs, in seconds (default 0). */
  clockToleranceSeconds?: number;
  /** How many verified HS256 tokens are kept (default 20,000; 0 keeps none). */
  verifiedTokens?: number;
}

/** The headers of the gateway's signed context, as received (absent = null or undefined). */
export interface SignedContextHeaders {
  /** `X-Signed-Context`: base64url (or base64) JSON `{sub, iat, exp, authorities, roles}`. */
  context?: string | null;
  /** `X-Context-Signature`: HMAC-SHA256 of the exact context header, hex or base64(url). */
  signature?: string | null;
  /** `X-Context-Kid`: which gateway key signed it. */
  kid?: string | null;
}

/** Options of {@linkcode UserAuth.signDevToken}. */
export interface DevTokenOptions {
  roles?: string[];
  structures?: string[];
  /** Lifetime in seconds (default 3600). */
  ttlSeconds?: number;
}

/** Verifies user credentials; built by {@linkcode createUserAuth}. */
export interface UserAuth {
  /** Verifies a JWT and returns its user. */
  verifyToken(token: string): Promise<UserPrincipal>;
  /** Verifies the gateway's signed context headers and returns its user. */
  verifySignedContext(headers: SignedContextHeaders): Promise<UserPrincipal>;
  /** Signs an HS256 token with the configured secret (development demo tokens). */
  signDevToken(sub: string, options?: DevTokenOptions): Promise<string>;
}

const stringList = (what: string) => v.array(v.string(`expected ${what} to be strings`));

/** Spring serialises a `GrantedAuthority` as `{"authority": "ROLE_X"}`; accept both forms. */
const authority = v.union([
  v.string(),
  v.pipe(v.object({ authority: v.string() }), v.transform((a) => a.authority)),
], "expected a string or {authority: string}");

const SignedContextSchema = v.object({
  sub: UserIdSchema,
  iat: v.pipe(v.number(), v.finite()),
  exp: v.pipe(v.number(), v.finite()),
  authorities: v.nullish(v.array(authority), []),
  roles: v.nullish(stringList("roles"), []),
});

function unauthenticated(message: string, cause?: unknown): AppError {
  return new AppError("unauthenticated", message, { cause });
}

/** Reads a claim by its exact name, else as a dotted path (`realm_access.roles`). */
function readClaim(payload: JWTPayload, name: string): unknown {
  if (Object.hasOwn(payload, name)) return payload[name];
  if (!name.includes(".")) return undefined;
  let node: unknown = payload;
  for (const part of name.split(".")) {
    if (typeof node !== "object" || node === null || !Object.hasOwn(node, part)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

function claimList(payload: JWTPayload, name: string): string[] {
  const value = readClaim(payload, name);
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) {
    throw unauthenticated(`Invalid token: claim ${quoted(name)} must be an array of strings`);
  }
  return [...value];
}

/** `auth` with `then` applied to every principal it verifies (tokens and signed contexts). */
export function mapVerified(
  auth: UserAuth,
  then: (principal: UserPrincipal) => UserPrincipal | Promise<UserPrincipal>,
): UserAuth {
  return {
    ...auth,
    verifyToken: async (token) => await then(await auth.verifyToken(token)),
    verifySignedContext: async (headers) => await then(await auth.verifySignedContext(headers)),
  };
}

/** Builds the user authenticator from the `auth` section of the config. */
export function createUserAuth(cfg: Config["auth"], options: UserAuthOptions = {}): UserAuth {
  const now = options.now ?? Date.now;
  const clockTolerance = options.clockToleranceSeconds ?? 0;
  const secret = cfg.jwtSecret ? new TextEncoder().encode(cfg.jwtSecret) : undefined;
  const jwks = options.jwks ??
    (cfg.jwksUrl ? createRemoteJwks(new URL(cfg.jwksUrl), { now }) : undefined);
  // Imported once: given the raw bytes, jose imports them again for every token it checks.
  const hmacKey = secret
    ? crypto.subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, ["verify"])
    : undefined;
  const algorithms = [...(secret ? ["HS256"] : []), ...(jwks ? ASYMMETRIC_ALGS : [])];
  const gatewayKeys = new Map<string, Promise<CryptoKey>>();

  // HS256 tokens verified already, with their user and until when they hold: a client
  // presents the same token again on every reconnect and every poll, and checking it
  // costs ~33 µs of the main thread (a reconnect storm of 5,000 spends ~165 ms on it). An
  // entry answers exactly what a new check would: the secret is fixed for the process,
  // claims do not change under a signature, `nbf` once past stays past, and an entry is
  // used only before its `exp` (then the token is checked again, and fails as expired).
  // Only tokens signed with the secret get in; the oldest leave first. Not for JWKS keys,
  // which rotate. A lookup compares whole strings under V8's per-process seeded hash.
  const verifiedMax = options.verifiedTokens ?? VERIFIED_TOKENS;
  const verified = new Map<string, { principal: UserPrincipal; until: number }>();
  function rememberVerified(token: string, principal: UserPrincipal, exp: number) {
    if (verifiedMax <= 0 || token.length > VERIFIED_TOKEN_CHARS) return;
    if (verified.size >= verifiedMax) verified.delete(verified.keys().next().value!);
    verified.set(token, { principal, until: (exp + clockTolerance) * 1000 });
  }
  /** A copy of a kept user: callers may change theirs. */
  const copyOf = (p: UserPrincipal): UserPrincipal => ({
    ...p,
    roles: [...p.roles],
    structures: [...p.structures],
  });

  // The key is chosen by the (allow-listed) header alg, so a token can never make an
  // RSA/EC public key serve as an HMAC secret.
  const getKey: JWTVerifyGetKey = async (header, token) => {
    if (header.alg === "HS256" && hmacKey) return await hmacKey;
    if (!jwks || !(ASYMMETRIC_ALGS as readonly string[]).includes(header.alg)) {
      throw unauthenticated(`Token algorithm ${quoted(header.alg)} is not allowed`);
    }
    try {
      return await jwks(header, token);
    } catch (error) {
      if (
        error instanceof joseErrors.JWKSNoMatchingKey ||
        error instanceof joseErrors.JWKSMultipleMatchingKeys
      ) throw error;
      // The key set could not be fetched, parsed or imported: a server-side problem,
      // the caller's credential may be fine.
      throw new AppError(
        "unavailable",
        "Cannot verify the token: the JWKS endpoint is unreachable or answered no valid key set",
        { cause: error },
      );
    }
  };

  function describe(error: unknown, header: { alg?: unknown; kid?: unknown }): AppError {
    if (error instanceof AppError) return error;
    if (!(error instanceof joseErrors.JOSEError)) {
      return unauthenticated("Invalid token: malformed", error);
    }
    switch (error.code) {
      case "ERR_JWT_EXPIRED":
        return unauthenticated("Token has expired", error);
      case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
        return unauthenticated("Invalid token: signature verification failed", error);
      case "ERR_JOSE_ALG_NOT_ALLOWED":
        return unauthenticated(
          `Token algorithm ${quoted(header.alg)} is not allowed (expected ${
            algorithms.join(", ")
          })`,
          error,
        );
      case "ERR_JWKS_NO_MATCHING_KEY":
        return unauthenticated(
          header.kid === undefined
            ? "Invalid token: no JWKS key matches and the token has no key id"
            : `Unknown key id ${quoted(header.kid)}`,
          error,
        );
      case "ERR_JWKS_MULTIPLE_MATCHING_KEYS":
        return unauthenticated("Invalid token: several JWKS keys match, add a key id", error);
      case "ERR_JWT_CLAIM_VALIDATION_FAILED":
        // jose's claim messages name the claim and never include its value.
        return unauthenticated(`Invalid token: ${error.message}`, error);
      case "ERR_JOSE_NOT_SUPPORTED":
        return unauthenticated("Invalid token: unsupported algorithm or key", error);
      default:
        return unauthenticated("Invalid token: malformed", error);
    }
  }

  async function verifyToken(token: string): Promise<UserPrincipal> {
    if (algorithms.length === 0) {
      throw unauthenticated(
        "Bearer tokens are not accepted: no JWT secret or JWKS URL is configured",
      );
    }
    if (!token) throw unauthenticated("Invalid token: empty");
    if (token.length > MAX_TOKEN_CHARS) throw unauthenticated("Invalid token: too large");
    const known = verified.get(token);
    if (known) {
      if (now() < known.until) return copyOf(known.principal);
      verified.delete(token);
    }
    let header: { alg?: unknown; kid?: unknown };
    try {
      header = decodeProtectedHeader(token);
    } catch (error) {
      throw unauthenticated("Invalid token: malformed", error);
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, getKey, {
        algorithms,
        issuer: cfg.jwtIssuer,
        audience: cfg.jwtAudience,
        requiredClaims: ["sub", "exp"],
        currentDate: new Date(now()),
        clockTolerance,
      }));
    } catch (error) {
      throw describe(error, header);
    }
    const { sub, exp } = payload;
    if (!v.is(UserIdSchema, sub)) {
      throw unauthenticated(
        `Invalid token: "sub" must be 1 to ${MAX_USER_ID_CHARS} characters, not "." or ".."`,
      );
    }
    const principal: UserPrincipal = {
      kind: "user",
      id: sub,
      roles: claimList(payload, cfg.rolesClaim),
      structures: claimList(payload, cfg.structuresClaim),
      expiresAt: (exp as number) * 1000,
    };
    if (header.alg === "HS256") rememberVerified(token, copyOf(principal), exp as number);
    return principal;
  }

  function gatewayKey(kid: string): Promise<CryptoKey> | undefined {
    if (!Object.hasOwn(cfg.gatewayKeys, kid)) return undefined;
    let key = gatewayKeys.get(kid);
    if (!key) {
      key = crypto.subtle.importKey(
        "raw",
        new TextEncoder().encode(cfg.gatewayKeys[kid]),
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["verify"],
      );
      gatewayKeys.set(kid, key);
    }
    return key;
  }

  async function verifySignedContext(headers: SignedContextHeaders): Promise<UserPrincipal> {
    const { context, signature, kid } = headers;
    if (Object.keys(cfg.gatewayKeys).length === 0) {
      throw unauthenticated("Signed context is not accepted: no gateway keys are configured");
    }
    if (!context) throw unauthenticated("Missing X-Signed-Context header");
    if (!signature) throw unauthenticated("Missing X-Context-Signature header");
    if (!kid) throw unauthenticated("Missing X-Context-Kid header");
    if (context.length > MAX_CONTEXT_CHARS) {
      throw unauthenticated("Invalid signed context: too large");
    }
    const key = gatewayKey(kid);
    if (!key) throw unauthenticated(`Unknown key id ${quoted(kid)}`);
    // A 32-byte MAC is 64 hex characters or 43/44 base64 ones, so the forms never collide.
    const mac = (signature.length === 64 ? decodeHex(signature) : undefined) ??
      decodeBase64Any(signature);
    if (!mac || mac.length !== 32) {
      throw unauthenticated(
        "Invalid X-Context-Signature: expected a hex or base64 HMAC-SHA256",
      );
    }
    // crypto.subtle.verify compares in constant time.
    const valid = await crypto.subtle.verify(
      "HMAC",
      await key,
      mac,
      new TextEncoder().encode(context),
    );
    if (!valid) throw unauthenticated("Invalid signed context: signature verification failed");

    const bytes = decodeBase64Any(context);
    let json: unknown;
    try {
      if (!bytes) throw new TypeError("not base64");
      json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    } catch (error) {
      throw unauthenticated("Invalid signed context: expected base64 JSON", error);
    }
    const parsed = v.safeParse(SignedContextSchema, json);
    if (!parsed.success) {
      const first = fieldIssues(parsed.issues)[0];
      throw unauthenticated(`Invalid signed context: "${first.path}": ${first.message}`);
    }
    const { sub, iat, exp, roles, authorities } = parsed.output;
    if (exp <= iat) throw unauthenticated('Invalid signed context: "exp" is not after "iat"');
    if (exp - iat > SIGNED_CONTEXT_MAX_LIFETIME_S) {
      throw unauthenticated(
        `Invalid signed context: lifetime of ${
          exp - iat
        } s exceeds ${SIGNED_CONTEXT_MAX_LIFETIME_S} s`,
      );
    }
    const nowMs = now();
    if (nowMs >= exp * 1000) throw unauthenticated("Signed context has expired");
    if (iat * 1000 > nowMs + SIGNED_CONTEXT_MAX_SKEW_S * 1000) {
      throw unauthenticated("Invalid signed context: issued in the future");
    }
    return {
      kind: "user",
      id: sub,
      roles: [...new Set([...roles, ...authorities])],
      structures: [],
      expiresAt: exp * 1000,
    };
  }

  async function signDevToken(sub: string, opts: DevTokenOptions = {}): Promise<string> {
    if (!secret) throw new Error("Cannot sign a development token: no JWT secret is configured");
    const iat = Math.floor(now() / 1000);
    const jwt = new SignJWT({
      [cfg.rolesClaim]: opts.roles ?? [],
      [cfg.structuresClaim]: opts.structures ?? [],
    })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(sub)
      .setIssuedAt(iat)
      .setExpirationTime(iat + (opts.ttlSeconds ?? 3600));
    if (cfg.jwtIssuer) jwt.setIssuer(cfg.jwtIssuer);
    if (cfg.jwtAudience) jwt.setAudience(cfg.jwtAudience);
    return await jwt.sign(secret);
  }

  return { verifyToken, verifySignedContext, signDevToken };
}
