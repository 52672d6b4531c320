/**
 * Configuration from the environment, validated at start-up.
 *
 * {@linkcode ConfigSchema} is one valibot schema from the environment record to the
 * {@linkcode Config}: it reads each variable of {@linkcode VARIABLES}, applies the rules
 * between them, and arranges the result into sections, so the shape is written once.
 * {@linkcode loadConfig} is pure: it takes the environment as a record, so tests build
 * configs without touching the process. A bad value throws a {@linkcode ConfigError}
 * whose message is one line naming the variable.
 */

import * as v from "valibot";
import { type RateRule, rateRule, SCOPES, type ServiceKey } from "./config/values.ts";
import { type Env, envSchema, type Settings, VARIABLES } from "./config/variables.ts";

export {
  RATE_LIMITER_KINDS,
  type RateLimiterKind,
  type RateRule,
  type Scope,
  SCOPES,
  type ServiceKey,
} from "./config/values.ts";
export { type Env, type Variable, VARIABLES } from "./config/variables.ts";

/** A configuration problem; the message is one line naming the variable. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Random URL-safe text for development secrets. */
export function randomSecret(bytes = 24): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return btoa(String.fromCharCode(...buf)).replaceAll("+", "-").replaceAll("/", "_")
    .replaceAll("=", "");
}

const publicUrlFrom = (s: Settings) => `http://${s.HOST}:${s.PORT}`;

/** `mailto:` the address of a `Name <address>` sender (the default VAPID subject). */
function mailtoOf(from: string): string {
  const address = /<([^<>\s]+@[^<>\s]+)>\s*$/.exec(from)?.[1] ?? from.trim();
  return /^[^\s@]+@[^\s@]+$/.test(address) ? `mailto:${address}` : "mailto:no-reply@localhost";
}

/** The environment as relais's configuration: see {@linkcode loadConfig}. */
export const ConfigSchema = v.pipe(
  envSchema(VARIABLES),
  v.forward(
    v.check(
      (s) =>
        s.RELAIS_ENV !== "production" || s.RELAIS_JWT_SECRET === undefined ||
        s.RELAIS_JWT_SECRET.length >= 32,
      "expected at least 32 characters",
    ),
    ["RELAIS_JWT_SECRET"],
  ),
  v.check(
    (s) =>
      s.RELAIS_ENV !== "production" || s.RELAIS_JWT_SECRET !== undefined ||
      s.RELAIS_JWKS_URL !== undefined || Object.keys(s.RELAIS_GATEWAY_KEYS ?? {}).length > 0,
    "Missing RELAIS_JWT_SECRET, RELAIS_JWKS_URL or RELAIS_GATEWAY_KEYS: production needs user authentication",
  ),
  v.check(
    (s) => s.RELAIS_ENV !== "production" || (s.RELAIS_SERVICE_KEYS ?? []).length > 0,
    "Missing RELAIS_SERVICE_KEYS: production needs service keys",
  ),
  // A VAPID key pair is given whole or not at all.
  v.forward(
    v.check(
      (s) =>
        (s.RELAIS_VAPID_PUBLIC_KEY === undefined) === (s.RELAIS_VAPID_PRIVATE_KEY === undefined),
      "expected RELAIS_VAPID_PUBLIC_KEY and RELAIS_VAPID_PRIVATE_KEY together",
    ),
    ["RELAIS_VAPID_PRIVATE_KEY"],
  ),
  // The default public URL comes from HOST and PORT, which may not make a URL (`::`).
  v.forward(
    v.rawCheck(({ dataset, addIssue }) => {
      if (!dataset.typed || dataset.value.RELAIS_PUBLIC_URL !== undefined) return;
      const result = v.safeParse(VARIABLES.RELAIS_PUBLIC_URL.schema, publicUrlFrom(dataset.value));
      if (!result.success) addIssue({ message: result.issues[0].message });
    }),
    ["RELAIS_PUBLIC_URL"],
  ),
  v.transform(arrange),
);

/**
 * Arranges the variables into sections. In development, a missing JWT secret (without a
 * JWKS URL) and missing service keys are generated, and `auth.generated` is set.
 */
function arrange(s: Settings) {
  const development = s.RELAIS_ENV === "development";
  const generateSecret = development && !s.RELAIS_JWT_SECRET && !s.RELAIS_JWKS_URL;
  const jwtSecret = generateSecret ? randomSecret(32) : s.RELAIS_JWT_SECRET;
  const generateKey = development && !s.RELAIS_SERVICE_KEYS?.length;
  const serviceKeys: ServiceKey[] = generateKey
    ? [{ name: "dev", key: `dev_${randomSecret(24)}`, scopes: [...SCOPES] }]
    : s.RELAIS_SERVICE_KEYS ?? [];
  return {
    env: s.RELAIS_ENV,
    host: s.HOST,
    port: s.PORT,
    kvPath: s.RELAIS_KV_PATH,
    logLevel: s.RELAIS_LOG_LEVEL,
    /** Spans of events and messages for the global OpenTelemetry tracer provider. */
    traces: s.RELAIS_TRACES === "on",
    auth: {
      jwtSecret,
      jwksUrl: s.RELAIS_JWKS_URL,
      jwtIssuer: s.RELAIS_JWT_ISSUER,
      jwtAudience: s.RELAIS_JWT_AUDIENCE,
      rolesClaim: s.RELAIS_JWT_ROLES_CLAIM,
      structuresClaim: s.RELAIS_JWT_STRUCTURES_CLAIM,
      /** kid → HMAC secret for the gateway's signed context. */
      gatewayKeys: s.RELAIS_GATEWAY_KEYS ?? Object.create(null) as Record<string, string>,
      serviceKeys,
      /** True when the JWT secret and service key were generated for development. */
      generated: generateSecret || generateKey,
    },
    mail: { smtpUrl: s.SMTP_URL, from: s.RELAIS_MAIL_FROM, outboxDir: s.RELAIS_OUTBOX_DIR },
    redisUrl: s.REDIS_URL,
    /** Where the stores live: `kv` (Deno KV at `kvPath`), or `redis` in cluster mode. */
    store: (s.RELAIS_CLUSTER === "redis" ? "redis" : "kv") as "kv" | "redis",
    /** This node's name: the ingest's consumer in its group. Default: host name + pid. */
    nodeId: s.RELAIS_NODE_ID,
    /** Change-data ingest from a Redis stream of Debezium events; `off` without a stream. */
    ingest: {
      kind: s.RELAIS_INGEST_STREAM ? "redis" : "off",
      stream: s.RELAIS_INGEST_STREAM,
      group: s.RELAIS_INGEST_GROUP,
      rulesPath: s.RELAIS_INGEST_RULES,
      claimIdleMs: s.RELAIS_INGEST_CLAIM_IDLE_MS,
    },
    /** The mailer: grace period, digests, retries and breaker, links in mails. */
    mailer: {
      /** A NOTIFICATION still unread this long after it was accepted is mailed. */
      graceMs: s.RELAIS_MAIL_GRACE_MS,
      /** Local time ("HH:MM", user's time zone) of daily digests; hourly ones go at :00. */
      dailyDigestAt: s.RELAIS_DIGEST_DAILY_AT,
      retryBaseMs: s.RELAIS_MAIL_RETRY_BASE_MS,
      maxAttempts: s.RELAIS_MAIL_MAX_ATTEMPTS,
      breakerThreshold: s.RELAIS_MAIL_BREAKER_THRESHOLD,
      breakerCooldownMs: s.RELAIS_MAIL_BREAKER_COOLDOWN_MS,
      /** relais's public address, for `List-Unsubscribe` links; default from HOST and PORT. */
      publicUrl: s.RELAIS_PUBLIC_URL ?? publicUrlFrom(s),
      /** The portfolio's address, for relative links in payloads. */
      appUrl: s.RELAIS_APP_URL,
      /** Signs unsubscribe links; default the JWT secret (or a random one per process). */
      secret: s.RELAIS_MAIL_SECRET ?? jwtSecret ?? randomSecret(32),
    },
    /** How pushes are paced so a user is never flooded. */
    pacing: {
      lowWindowMs: s.RELAIS_LOW_WINDOW_MS,
      pushBudget: s.RELAIS_PUSH_BUDGET,
      pushBudgetWindowMs: s.RELAIS_PUSH_BUDGET_WINDOW_MS,
    },
    /** Refresh a user's directory roles and structures from their token's claims at connect. */
    directoryFromClaims: s.RELAIS_DIRECTORY_FROM_CLAIMS,
    delivery: {
      /** First redelivery delay of an unacked item; the envelope's backoff scales it. */
      ackRetryBaseMs: s.RELAIS_ACK_RETRY_BASE_MS,
      /** How long REALTIME and SYSTEM items without ack stay available for resume. */
      recentWindowMs: s.RELAIS_RECENT_WINDOW_MS,
      /** How many items a resume replays at most before answering `recovered: false`. */
      resumeMaxItems: s.RELAIS_RESUME_MAX_ITEMS,
      /** An actor with no connection and no work stops after this long. */
      actorIdleMs: s.RELAIS_ACTOR_IDLE_MS,
    },
    limits: {
      maxFrameBytes: s.RELAIS_MAX_FRAME_BYTES,
      maxPayloadBytes: 64 * 1024,
      maxAudience: s.RELAIS_MAX_AUDIENCE,
      maxBodyBytes: s.RELAIS_MAX_BODY_BYTES,
      /** Deepest nesting of arrays and objects accepted in a JSON body or frame. */
      maxJsonDepth: s.RELAIS_MAX_JSON_DEPTH,
      /** Live connections one user may hold at once (all transports). */
      maxConnectionsPerUser: s.RELAIS_MAX_CONNECTIONS_PER_USER,
      /** Bytes a socket may have waiting to be sent before it is cut off with 4008. */
      maxSocketBufferBytes: s.RELAIS_MAX_SOCKET_BUFFER_BYTES,
    },
    /** Rate limits; an absent rule means unlimited (`off`). */
    rate: {
      /** Which limiter adapter counts: `redis` by default when `REDIS_URL` is set, else `kv`. */
      limiter: s.RELAIS_RATE_LIMITER ?? (s.REDIS_URL ? "redis" : "kv"),
      /** Prefix of the limiter's keys in Redis, so deployments can share one Redis. */
      redisPrefix: s.RELAIS_REDIS_PREFIX,
      /** Messages sent, edited or deleted per user. */
      messages: s.RELAIS_RATE_MESSAGES,
      /** New conversations per user. */
      conversations: s.RELAIS_RATE_CONVERSATIONS,
      /** Published events per service key. */
      events: s.RELAIS_RATE_EVENTS,
      /** Connection attempts (WebSocket, SSE, poll) per client IP. */
      connects: s.RELAIS_RATE_CONNECTS,
      /** Failed authentications per client IP, after which the IP is refused for a while. */
      authFailures: s.RELAIS_RATE_AUTH_FAILURES,
    },
    /** Browser origins allowed by CORS and on WebSocket/SSE; `"*"` allows any. */
    allowedOrigins: s.RELAIS_ALLOWED_ORIGINS ?? (development ? "*" : []),
    /** Proxies (CIDRs) whose `X-Forwarded-For` gives the client address for per-IP limits. */
    trustedProxies: s.RELAIS_TRUSTED_PROXIES ?? [],
    /** How often kill switches changed by another process are picked up. */
    controlsRefreshMs: s.RELAIS_CONTROLS_REFRESH_MS,
    realtime: {
      /** Heartbeat interval; a connection silent for two intervals is dead. */
      heartbeatMs: s.RELAIS_HEARTBEAT_MS,
      /** A connection without client activity for this long is closed with 4009; 0 disables. */
      idleTimeoutMs: s.RELAIS_IDLE_TIMEOUT_MS,
      /** The longest a `GET /v1/poll` waits for something to send. */
      pollMaxTimeoutMs: s.RELAIS_POLL_MAX_TIMEOUT_MS,
    },
    /** How long each kind of record is kept (ms; absent: for ever), and the sweep's pace. */
    retention: {
      periods: {
        items: s.RELAIS_RETENTION_ITEMS,
        events: s.RELAIS_RETENTION_EVENTS,
        dead_letters: s.RELAIS_RETENTION_DEAD_LETTERS,
        audit: s.RELAIS_RETENTION_AUDIT,
      },
      /** Time between the end of one sweep round and the start of the next. */
      sweepMs: s.RELAIS_RETENTION_SWEEP_MS,
    },
    /**
     * Web Push to users without a live connection: on with a VAPID key pair, or in
     * development, where a missing pair is generated once and kept in the store.
     */
    push: {
      enabled: development || s.RELAIS_VAPID_PUBLIC_KEY !== undefined,
      /** The configured key pair; absent in development: generated. */
      vapid: s.RELAIS_VAPID_PUBLIC_KEY && s.RELAIS_VAPID_PRIVATE_KEY
        ? { publicKey: s.RELAIS_VAPID_PUBLIC_KEY, privateKey: s.RELAIS_VAPID_PRIVATE_KEY }
        : undefined,
      subject: s.RELAIS_VAPID_SUBJECT ?? mailtoOf(s.RELAIS_MAIL_FROM),
      /** Which endpoints a subscription may name. */
      endpoints: { hosts: s.RELAIS_PUSH_ENDPOINT_HOSTS, allowLoopback: development },
      retryBaseMs: s.RELAIS_PUSH_RETRY_BASE_MS,
      maxAttempts: s.RELAIS_PUSH_MAX_ATTEMPTS,
    },
    /** User-to-user messaging. */
    messaging: {
      /** Who a user may start a conversation with: people sharing a structure, or anyone. */
      policy: s.RELAIS_CONVERSATION_POLICY,
      /** Members of a conversation, at most. */
      maxMembers: s.RELAIS_MAX_CONVERSATION_MEMBERS,
      /** Characters of a message, at most. */
      maxMessageLength: s.RELAIS_MAX_MESSAGE_LENGTH,
      /** A member's typing is broadcast at most once per this interval. */
      typingMs: s.RELAIS_TYPING_INTERVAL_MS,
    },
  };
}

/** A property that may be `undefined` is optional, as a hand-written interface says it. */
type Optional<T> = T extends readonly unknown[] | string | number | boolean | undefined ? T
  : Flat<
    & { [K in keyof T as undefined extends T[K] ? K : never]?: Optional<T[K]> }
    & { [K in keyof T as undefined extends T[K] ? never : K]: Optional<T[K]> }
  >;
type Flat<T> = { [K in keyof T]: T[K] };

/** Everything relais reads from its environment, as {@linkcode ConfigSchema} gives it. */
export type Config = Optional<v.InferOutput<typeof ConfigSchema>>;

/** The first issue as one line: `Invalid NAME: …`, or the whole message of a rule. */
function describe(issue: v.BaseIssue<unknown>): string {
  const name = issue.path?.[0]?.key;
  return typeof name === "string" ? `Invalid ${name}: ${issue.message}` : issue.message;
}

/** Parses a rate rule such as `30/10s` (units ms, s, m, h; a bare number is seconds), or `off`. */
export function parseRateRule(name: string, raw: string): RateRule | undefined {
  const result = v.safeParse(rateRule, raw);
  if (!result.success) throw new ConfigError(`Invalid ${name}: ${result.issues[0].message}`);
  return result.output;
}

/**
 * Reads and validates the configuration. In development, a missing JWT secret and
 * missing service keys are generated (and `auth.generated` is set); in production,
 * missing auth configuration is an error.
 */
export function loadConfig(env: Env): Config {
  const result = v.safeParse(ConfigSchema, env);
  if (!result.success) throw new ConfigError(describe(result.issues[0]));
  return result.output;
}
