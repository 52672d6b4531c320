/**
 * Configuration from the environment, validated at start-up.
 *
 * {@linkcode loadConfig} is pure: it takes the environment as a record, so tests build
 * configs without touching the process. A bad value throws a {@linkcode ConfigError}
 * whose message is one line naming the variable.
 */

import * as v from "valibot";
import { parseCidr } from "./ratelimit/client_ip.ts";

/** The scopes a service key can carry. */
export const SCOPES = [
  "events:publish",
  "directory:write",
  "conversations:write",
  "admin",
] as const;

/** A scope from {@linkcode SCOPES}. */
export type Scope = (typeof SCOPES)[number];

/** A service API key with its scopes. */
export interface ServiceKey {
  name: string;
  key: string;
  scopes: Scope[];
}

/** Everything relais reads from its environment. */
export interface Config {
  env: "development" | "production";
  host: string;
  port: number;
  kvPath: string;
  logLevel: "debug" | "info" | "warning" | "error";
  auth: {
    jwtSecret?: string;
    jwksUrl?: string;
    jwtIssuer?: string;
    jwtAudience?: string;
    rolesClaim: string;
    structuresClaim: string;
    /** kid → HMAC secret for the gateway's signed context. */
    gatewayKeys: Record<string, string>;
    serviceKeys: ServiceKey[];
    /** True when the JWT secret and service key were generated for development. */
    generated: boolean;
  };
  mail: { smtpUrl?: string; from: string; outboxDir: string };
  redisUrl?: string;
  /** The mailer: grace period, digests, retries and breaker, links in mails. */
  mailer: {
    /** A NOTIFICATION still unread this long after it was accepted is mailed. */
    graceMs: number;
    /** Local time ("HH:MM", user's time zone) of daily digests; hourly ones go at :00. */
    dailyDigestAt: string;
    retryBaseMs: number;
    maxAttempts: number;
    breakerThreshold: number;
    breakerCooldownMs: number;
    /** relais's public address, for `List-Unsubscribe` links; default from HOST and PORT. */
    publicUrl: string;
    /** The portfolio's address, for relative links in payloads. */
    appUrl?: string;
    /** Signs unsubscribe links; default the JWT secret (or a random one per process). */
    secret: string;
  };
  /** How pushes are paced so a user is never flooded. */
  pacing: {
    lowWindowMs: number;
    pushBudget: number;
    pushBudgetWindowMs: number;
  };
  /** Refresh a user's directory roles and structures from their token's claims at connect. */
  directoryFromClaims: boolean;
  delivery: {
    /** First redelivery delay of an unacked item; the envelope's backoff scales it. */
    ackRetryBaseMs: number;
    /** How long REALTIME and SYSTEM items without ack stay available for resume. */
    recentWindowMs: number;
    /** How many items a resume replays at most before answering `recovered: false`. */
    resumeMaxItems: number;
    /** An actor with no connection and no work stops after this long. */
    actorIdleMs: number;
  };
  limits: {
    maxFrameBytes: number;
    maxPayloadBytes: number;
    maxAudience: number;
    maxBodyBytes: number;
    /** Deepest nesting of arrays and objects accepted in a JSON body or frame. */
    maxJsonDepth: number;
    /** Live connections one user may hold at once (all transports). */
    maxConnectionsPerUser: number;
    /** Bytes a socket may have waiting to be sent before it is cut off with 4008. */
    maxSocketBufferBytes: number;
  };
  /** Rate limits; an absent rule means unlimited (`off`). */
  rate: {
    /** Which limiter adapter counts: `redis` by default when `REDIS_URL` is set, else `kv`. */
    limiter: RateLimiterKind;
    /** Prefix of the limiter's keys in Redis, so deployments can share one Redis. */
    redisPrefix: string;
    /** Messages (and typing frames) per user. */
    messages?: RateRule;
    /** New conversations per user. */
    conversations?: RateRule;
    /** Published events per service key. */
    events?: RateRule;
    /** Connection attempts (WebSocket, SSE, poll) per client IP. */
    connects?: RateRule;
    /** Failed authentications per client IP, after which the IP is refused for a while. */
    authFailures?: RateRule;
  };
  /** Browser origins allowed by CORS and on WebSocket/SSE; `"*"` allows any. */
  allowedOrigins: string[] | "*";
  /** Proxies (CIDRs) whose `X-Forwarded-For` gives the client address for per-IP limits. */
  trustedProxies: string[];
  /** How often kill switches changed by another process are picked up. */
  controlsRefreshMs: number;
  realtime: {
    /** Heartbeat interval; a connection silent for two intervals is dead. */
    heartbeatMs: number;
    /** A connection without client activity for this long is closed with 4009; 0 disables. */
    idleTimeoutMs: number;
    /** The longest a `GET /v1/poll` waits for something to send. */
    pollMaxTimeoutMs: number;
  };
  /** User-to-user messaging. */
  messaging: {
    /** Who a user may start a conversation with: people sharing a structure, or anyone. */
    policy: "same-structure" | "any";
    /** Members of a conversation, at most. */
    maxMembers: number;
    /** Characters of a message, at most. */
    maxMessageLength: number;
    /** A member's typing is broadcast at most once per this interval. */
    typingMs: number;
  };
}

/** The rate limiter adapters. */
export const RATE_LIMITER_KINDS = ["memory", "kv", "redis"] as const;

/** A rate limiter adapter, as `RELAIS_RATE_LIMITER` names it. */
export type RateLimiterKind = (typeof RATE_LIMITER_KINDS)[number];

/** At most `limit` hits per `windowMs`, over a sliding window. */
export interface RateRule {
  limit: number;
  windowMs: number;
}

/** A configuration problem; the message is one line naming the variable. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

type Env = Record<string, string | undefined>;

function read<S extends v.GenericSchema<string, unknown>>(
  env: Env,
  name: string,
  schema: S,
  fallback: string,
): v.InferOutput<S> {
  const raw = env[name]?.trim() || fallback;
  const result = v.safeParse(schema, raw);
  if (!result.success) {
    throw new ConfigError(`Invalid ${name}: ${result.issues[0].message}`);
  }
  return result.output;
}

function optional(env: Env, name: string): string | undefined {
  const raw = env[name]?.trim();
  return raw ? raw : undefined;
}

const integer = (min: number, max: number) =>
  v.pipe(
    v.string(),
    v.regex(/^\d+$/, "expected a whole number"),
    v.transform(Number),
    v.minValue(min, `expected at least ${min}`),
    v.maxValue(max, `expected at most ${max}`),
  );

const url = (protocols: string[]) =>
  v.pipe(
    v.string(),
    v.url("expected a URL"),
    v.check(
      (s) => URL.canParse(s) && protocols.includes(new URL(s).protocol),
      `expected a URL starting with ${protocols.map((p) => `"${p}//"`).join(" or ")}`,
    ),
  );

function parseGatewayKeys(raw: string | undefined): Record<string, string> {
  const keys: Record<string, string> = {};
  if (!raw) return keys;
  for (const entry of raw.split(",").map((s) => s.trim()).filter(Boolean)) {
    const at = entry.indexOf(":");
    if (at <= 0 || at === entry.length - 1) {
      throw new ConfigError(
        'Invalid RELAIS_GATEWAY_KEYS: expected "kid:secret" entries separated by commas',
      );
    }
    keys[entry.slice(0, at)] = entry.slice(at + 1);
  }
  return keys;
}

function parseServiceKeys(raw: string | undefined): ServiceKey[] {
  if (!raw) return [];
  return raw.split(",").map((s) => s.trim()).filter(Boolean).map((entry, index) => {
    // Scopes contain colons themselves (`events:publish`): only the first two separate.
    const first = entry.indexOf(":");
    const second = entry.indexOf(":", first + 1);
    const parts = first < 0 || second < 0
      ? []
      : [entry.slice(0, first), entry.slice(first + 1, second), entry.slice(second + 1)];
    if (parts.length !== 3 || parts.some((p) => !p)) {
      throw new ConfigError(
        `Invalid RELAIS_SERVICE_KEYS: entry ${
          index + 1
        } is not "name:key:scope+scope" (the key is not shown)`,
      );
    }
    const [name, key, scopeList] = parts;
    if (key.length < 16) {
      throw new ConfigError(
        `Invalid RELAIS_SERVICE_KEYS: the key of "${name}" is shorter than 16 characters`,
      );
    }
    const scopes = scopeList.split("+");
    for (const scope of scopes) {
      if (!(SCOPES as readonly string[]).includes(scope)) {
        throw new ConfigError(
          `Invalid RELAIS_SERVICE_KEYS: unknown scope "${scope}" for "${name}" (expected ${
            SCOPES.join(", ")
          })`,
        );
      }
    }
    return { name, key, scopes: scopes as Scope[] };
  });
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a rate rule such as `30/10s` (units ms, s, m, h; a bare number is seconds), or `off`. */
export function parseRateRule(name: string, raw: string): RateRule | undefined {
  const text = raw.trim().toLowerCase();
  if (text === "off") return undefined;
  const match = /^(\d{1,9})\s*\/\s*(\d{0,9})\s*(ms|s|m|h)?$/.exec(text);
  const limit = match ? Number(match[1]) : 0;
  const windowMs = match ? Number(match[2] || "1") * DURATION_UNITS[match[3] ?? "s"] : 0;
  if (!match || limit < 1 || windowMs < 1 || windowMs > 86_400_000) {
    throw new ConfigError(
      `Invalid ${name}: expected "count/window" such as "30/10s" (ms, s, m or h, at most 24h) or "off"`,
    );
  }
  return { limit, windowMs };
}

function parseTrustedProxies(raw: string | undefined): string[] {
  if (!raw) return [];
  return raw.split(",").map((s) => s.trim()).filter(Boolean).map((cidr) => {
    if (!parseCidr(cidr)) {
      throw new ConfigError(
        `Invalid RELAIS_TRUSTED_PROXIES: ${
          JSON.stringify(cidr.slice(0, 100))
        } is not a CIDR such as "10.0.0.0/8" or an address`,
      );
    }
    return cidr;
  });
}

function parseOrigins(raw: string | undefined, mode: Config["env"]): string[] | "*" {
  if (!raw) return mode === "development" ? "*" : [];
  if (raw === "*") return "*";
  return raw.split(",").map((s) => s.trim()).filter(Boolean).map((origin) => {
    let url: URL | undefined;
    try {
      url = new URL(origin);
    } catch { /* reported below */ }
    if (!url || !["http:", "https:"].includes(url.protocol) || url.origin !== origin) {
      throw new ConfigError(
        `Invalid RELAIS_ALLOWED_ORIGINS: ${
          JSON.stringify(origin.slice(0, 100))
        } is not an origin such as "https://portfolio.example.org"`,
      );
    }
    return url.origin;
  });
}

/** Random URL-safe text for development secrets. */
export function randomSecret(bytes = 24): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return btoa(String.fromCharCode(...buf)).replaceAll("+", "-").replaceAll("/", "_")
    .replaceAll("=", "");
}

/**
 * Reads and validates the configuration. In development, a missing JWT secret and
 * missing service keys are generated (and `auth.generated` is set); in production,
 * missing auth configuration is an error.
 */
export function loadConfig(env: Env): Config {
  const mode = read(
    env,
    "RELAIS_ENV",
    v.picklist(["development", "production"], 'expected "development" or "production"'),
    "development",
  );
  let jwtSecret = optional(env, "RELAIS_JWT_SECRET");
  const jwksUrl = optional(env, "RELAIS_JWKS_URL");
  if (jwksUrl) read(env, "RELAIS_JWKS_URL", url(["https:", "http:"]), "");
  if (jwtSecret && jwtSecret.length < 32 && mode === "production") {
    throw new ConfigError("Invalid RELAIS_JWT_SECRET: expected at least 32 characters");
  }
  const gatewayKeys = parseGatewayKeys(optional(env, "RELAIS_GATEWAY_KEYS"));
  let serviceKeys = parseServiceKeys(optional(env, "RELAIS_SERVICE_KEYS"));
  let generated = false;
  if (mode === "production") {
    if (!jwtSecret && !jwksUrl && Object.keys(gatewayKeys).length === 0) {
      throw new ConfigError(
        "Missing RELAIS_JWT_SECRET, RELAIS_JWKS_URL or RELAIS_GATEWAY_KEYS: production needs user authentication",
      );
    }
    if (serviceKeys.length === 0) {
      throw new ConfigError("Missing RELAIS_SERVICE_KEYS: production needs service keys");
    }
  } else {
    if (!jwtSecret && !jwksUrl) {
      jwtSecret = randomSecret(32);
      generated = true;
    }
    if (serviceKeys.length === 0) {
      serviceKeys = [{
        name: "dev",
        key: `dev_${randomSecret(24)}`,
        scopes: [...SCOPES],
      }];
      generated = true;
    }
  }
  const smtpUrl = optional(env, "SMTP_URL");
  if (smtpUrl) read(env, "SMTP_URL", url(["smtp:", "smtps:"]), "");
  const redisUrl = optional(env, "REDIS_URL");
  if (redisUrl) read(env, "REDIS_URL", url(["redis:", "rediss:"]), "");

  return {
    env: mode,
    host: read(env, "HOST", v.pipe(v.string(), v.minLength(1)), "127.0.0.1"),
    port: read(env, "PORT", integer(0, 65535), "8787"),
    kvPath: read(env, "RELAIS_KV_PATH", v.pipe(v.string(), v.minLength(1)), "./data/relais.kv"),
    logLevel: read(
      env,
      "RELAIS_LOG_LEVEL",
      v.picklist(["debug", "info", "warning", "error"], "expected debug, info, warning or error"),
      "info",
    ),
    auth: {
      jwtSecret,
      jwksUrl,
      jwtIssuer: optional(env, "RELAIS_JWT_ISSUER"),
      jwtAudience: optional(env, "RELAIS_JWT_AUDIENCE"),
      rolesClaim: optional(env, "RELAIS_JWT_ROLES_CLAIM") ?? "roles",
      structuresClaim: optional(env, "RELAIS_JWT_STRUCTURES_CLAIM") ?? "structures",
      gatewayKeys,
      serviceKeys,
      generated,
    },
    mail: {
      smtpUrl,
      from: optional(env, "RELAIS_MAIL_FROM") ?? "relais <no-reply@localhost>",
      outboxDir: optional(env, "RELAIS_OUTBOX_DIR") ?? "./data/outbox",
    },
    redisUrl,
    mailer: {
      graceMs: read(env, "RELAIS_MAIL_GRACE_MS", integer(0, 604_800_000), "600000"),
      dailyDigestAt: read(
        env,
        "RELAIS_DIGEST_DAILY_AT",
        v.pipe(v.string(), v.regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'expected "HH:MM"')),
        "08:00",
      ),
      retryBaseMs: read(env, "RELAIS_MAIL_RETRY_BASE_MS", integer(10, 86_400_000), "30000"),
      maxAttempts: read(env, "RELAIS_MAIL_MAX_ATTEMPTS", integer(1, 100), "8"),
      breakerThreshold: read(env, "RELAIS_MAIL_BREAKER_THRESHOLD", integer(1, 1000), "3"),
      breakerCooldownMs: read(
        env,
        "RELAIS_MAIL_BREAKER_COOLDOWN_MS",
        integer(10, 86_400_000),
        "60000",
      ),
      publicUrl: read(
        env,
        "RELAIS_PUBLIC_URL",
        url(["https:", "http:"]),
        `http://${optional(env, "HOST") ?? "127.0.0.1"}:${optional(env, "PORT") ?? "8787"}`,
      ),
      appUrl: optional(env, "RELAIS_APP_URL") &&
        read(env, "RELAIS_APP_URL", url(["https:", "http:"]), ""),
      secret: optional(env, "RELAIS_MAIL_SECRET") ?? jwtSecret ?? randomSecret(32),
    },
    pacing: {
      lowWindowMs: read(env, "RELAIS_LOW_WINDOW_MS", integer(0, 600_000), "2000"),
      pushBudget: read(env, "RELAIS_PUSH_BUDGET", integer(1, 100_000), "60"),
      pushBudgetWindowMs: read(
        env,
        "RELAIS_PUSH_BUDGET_WINDOW_MS",
        integer(100, 3_600_000),
        "10000",
      ),
    },
    directoryFromClaims: read(
      env,
      "RELAIS_DIRECTORY_FROM_CLAIMS",
      v.pipe(
        v.picklist(["true", "false", "1", "0"], 'expected "true" or "false"'),
        v.transform((s) => s === "true" || s === "1"),
      ),
      "false",
    ),
    delivery: {
      ackRetryBaseMs: read(env, "RELAIS_ACK_RETRY_BASE_MS", integer(10, 3_600_000), "5000"),
      recentWindowMs: read(env, "RELAIS_RECENT_WINDOW_MS", integer(1000, 86_400_000), "120000"),
      resumeMaxItems: read(env, "RELAIS_RESUME_MAX_ITEMS", integer(1, 100_000), "1000"),
      actorIdleMs: read(env, "RELAIS_ACTOR_IDLE_MS", integer(100, 86_400_000), "300000"),
    },
    limits: {
      maxFrameBytes: read(env, "RELAIS_MAX_FRAME_BYTES", integer(256, 16_777_216), "131072"),
      maxPayloadBytes: 64 * 1024,
      maxAudience: read(env, "RELAIS_MAX_AUDIENCE", integer(1, 10_000_000), "100000"),
      maxBodyBytes: read(env, "RELAIS_MAX_BODY_BYTES", integer(1024, 67_108_864), "262144"),
      maxJsonDepth: read(env, "RELAIS_MAX_JSON_DEPTH", integer(2, 1000), "32"),
      maxConnectionsPerUser: read(env, "RELAIS_MAX_CONNECTIONS_PER_USER", integer(1, 10_000), "20"),
      maxSocketBufferBytes: read(
        env,
        "RELAIS_MAX_SOCKET_BUFFER_BYTES",
        integer(65_536, 1_073_741_824),
        "4194304",
      ),
    },
    rate: {
      limiter: read(
        env,
        "RELAIS_RATE_LIMITER",
        v.picklist(RATE_LIMITER_KINDS, 'expected "memory", "kv" or "redis"'),
        redisUrl ? "redis" : "kv",
      ),
      redisPrefix: read(
        env,
        "RELAIS_REDIS_PREFIX",
        v.pipe(v.string(), v.regex(/^[\w.:-]{1,100}$/, "expected letters, digits, . : _ or -")),
        "relais",
      ),
      messages: parseRateRule(
        "RELAIS_RATE_MESSAGES",
        optional(env, "RELAIS_RATE_MESSAGES") ?? "60/10s",
      ),
      conversations: parseRateRule(
        "RELAIS_RATE_CONVERSATIONS",
        optional(env, "RELAIS_RATE_CONVERSATIONS") ?? "30/1h",
      ),
      events: parseRateRule("RELAIS_RATE_EVENTS", optional(env, "RELAIS_RATE_EVENTS") ?? "2000/1s"),
      connects: parseRateRule(
        "RELAIS_RATE_CONNECTS",
        optional(env, "RELAIS_RATE_CONNECTS") ?? "300/10s",
      ),
      authFailures: parseRateRule(
        "RELAIS_RATE_AUTH_FAILURES",
        optional(env, "RELAIS_RATE_AUTH_FAILURES") ?? "30/1m",
      ),
    },
    allowedOrigins: parseOrigins(optional(env, "RELAIS_ALLOWED_ORIGINS"), mode),
    trustedProxies: parseTrustedProxies(optional(env, "RELAIS_TRUSTED_PROXIES")),
    controlsRefreshMs: read(env, "RELAIS_CONTROLS_REFRESH_MS", integer(100, 3_600_000), "2000"),
    realtime: {
      heartbeatMs: read(env, "RELAIS_HEARTBEAT_MS", integer(50, 3_600_000), "25000"),
      idleTimeoutMs: read(env, "RELAIS_IDLE_TIMEOUT_MS", integer(0, 604_800_000), "1800000"),
      pollMaxTimeoutMs: read(env, "RELAIS_POLL_MAX_TIMEOUT_MS", integer(0, 600_000), "30000"),
    },
    messaging: {
      policy: read(
        env,
        "RELAIS_CONVERSATION_POLICY",
        v.picklist(["same-structure", "any"], 'expected "same-structure" or "any"'),
        "same-structure",
      ),
      maxMembers: read(env, "RELAIS_MAX_CONVERSATION_MEMBERS", integer(2, 400), "100"),
      maxMessageLength: read(env, "RELAIS_MAX_MESSAGE_LENGTH", integer(1, 20_000), "4000"),
      typingMs: read(env, "RELAIS_TYPING_INTERVAL_MS", integer(100, 60_000), "2000"),
    },
  };
}
