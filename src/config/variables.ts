/**
 * Every environment variable relais reads, declared once: its name, what it means, how its
 * text is read and its default. The configuration schema is built from this table, and a
 * test checks the README's Configuration tables against it.
 */

import * as v from "valibot";
import {
  cidrs,
  flag,
  gatewayKeys,
  integer,
  keyPrefix,
  oneOf,
  origins,
  RATE_LIMITER_KINDS,
  rateRule,
  serviceKeys,
  text,
  timeOfDay,
  url,
  type Variable,
} from "./values.ts";
import { FEATURE_VARIABLES } from "./feature_variables.ts";
import { redisUrlProblem } from "../cluster/redis_url.ts";

export type { Variable } from "./values.ts";

const web = ["https:", "http:"];

/** The environment variables by name. */
export const VARIABLES = {
  HOST: { meaning: "listen address", schema: text, fallback: "127.0.0.1" },
  PORT: { meaning: "listen port", schema: integer(0, 65535), fallback: "8787" },
  RELAIS_ENV: {
    meaning:
      "`development` or `production` (production refuses to start without real auth configuration)",
    schema: oneOf(["development", "production"], 'expected "development" or "production"'),
    fallback: "development",
  },
  RELAIS_KV_PATH: {
    meaning: "Deno KV path (`:memory:` allowed)",
    schema: text,
    fallback: "./data/relais.kv",
  },
  RELAIS_JWT_SECRET: {
    meaning: "user tokens: HS256 secret (at least 32 characters in production)",
    schema: text,
    documented: "dev without `RELAIS_JWKS_URL`: a random secret",
  },
  RELAIS_JWKS_URL: { meaning: "user tokens: JWKS URL (RS256/ES256)", schema: url(web) },
  RELAIS_JWT_ISSUER: { meaning: "token issuer, checked when set", schema: text },
  RELAIS_JWT_AUDIENCE: { meaning: "token audience, checked when set", schema: text },
  RELAIS_GATEWAY_KEYS: {
    meaning: "`kid:secret,...` for the gateway's signed context",
    schema: gatewayKeys,
  },
  RELAIS_SERVICE_KEYS: {
    meaning:
      "`name:key:scope+scope,...` (scopes `events:publish`, `directory:write`, `conversations:write`, `privacy`, `admin`)",
    schema: serviceKeys,
    documented: "dev: one printed key with all scopes",
  },
  SMTP_URL: {
    meaning: "mail relay (`smtp://` or `smtps://`); the outbox is used when unset",
    schema: url(["smtp:", "smtps:"]),
    documented: "unset: outbox",
  },
  RELAIS_MAIL_FROM: {
    meaning: "sender of mails",
    schema: text,
    fallback: "relais <no-reply@localhost>",
  },
  RELAIS_OUTBOX_DIR: {
    meaning: "where mails are written when `SMTP_URL` is unset",
    schema: text,
    fallback: "./data/outbox",
  },
  REDIS_URL: {
    meaning:
      "Redis for `@upstash/ratelimit`, cluster mode and the ingest (`redis+cluster://h1:p1,h2:p2` for a Redis Cluster)",
    schema: v.pipe(
      v.string(),
      v.rawCheck(({ dataset, addIssue }) => {
        const problem = dataset.typed ? redisUrlProblem(dataset.value) : undefined;
        if (problem) addIssue({ message: problem });
      }),
    ),
    documented: "unset: KV-backed limiter",
  },
  RELAIS_TRUSTED_PROXIES: {
    meaning: "CIDRs whose `X-Forwarded-For` gives the client address",
    schema: cidrs,
    documented: "unset: none",
  },
  RELAIS_LOG_LEVEL: {
    meaning: "`debug`, `info`, `warning`, `error`",
    schema: oneOf(["debug", "info", "warning", "error"], "expected debug, info, warning or error"),
    fallback: "info",
  },
  RELAIS_TRACES: {
    meaning: "OpenTelemetry traces of events and messages: `on` or `off`",
    schema: oneOf(["on", "off"], 'expected "on" or "off"'),
    fallback: "off",
  },
  RELAIS_JWT_ROLES_CLAIM: {
    meaning: "claim (or dotted path) holding roles",
    schema: text,
    fallback: "roles",
  },
  RELAIS_JWT_STRUCTURES_CLAIM: {
    meaning: "claim (or dotted path) holding structures",
    schema: text,
    fallback: "structures",
  },
  RELAIS_ACK_RETRY_BASE_MS: {
    meaning: "first wait before redelivering an unacked item",
    schema: integer(10, 3_600_000),
    fallback: "5000",
  },
  RELAIS_RECENT_WINDOW_MS: {
    meaning: "how long REALTIME/SYSTEM items without ack can be resumed",
    schema: integer(1000, 86_400_000),
    fallback: "120000",
  },
  RELAIS_RESUME_MAX_ITEMS: {
    meaning: "most items one resume replays",
    schema: integer(1, 100_000),
    fallback: "1000",
  },
  RELAIS_ACTOR_IDLE_MS: {
    meaning: "an offline user's actor and stream head stop after this long",
    schema: integer(100, 86_400_000),
    fallback: "300000",
  },
  RELAIS_MAX_FRAME_BYTES: {
    meaning: "largest WebSocket frame (bigger: close 4008)",
    schema: integer(256, 16_777_216),
    fallback: "131072",
  },
  RELAIS_MAX_BODY_BYTES: {
    meaning: "largest HTTP body",
    schema: integer(1024, 67_108_864),
    fallback: "262144",
  },
  RELAIS_MAX_JSON_DEPTH: {
    meaning: "deepest JSON accepted",
    schema: integer(2, 1000),
    fallback: "32",
  },
  RELAIS_MAX_AUDIENCE: {
    meaning: "most users one event may reach",
    schema: integer(1, 10_000_000),
    fallback: "100000",
  },
  RELAIS_DIRECTORY_FROM_CLAIMS: {
    meaning: "refresh roles and structures from token claims at connect",
    schema: flag,
    fallback: "false",
  },
  RELAIS_LOW_WINDOW_MS: {
    meaning: "LOW items grouped per user per window",
    schema: integer(0, 600_000),
    fallback: "2000",
  },
  RELAIS_PUSH_BUDGET: {
    meaning: "pushes per user per window before folding",
    schema: integer(1, 100_000),
    fallback: "60",
  },
  RELAIS_PUSH_BUDGET_WINDOW_MS: {
    meaning: "the window of `RELAIS_PUSH_BUDGET`",
    schema: integer(100, 3_600_000),
    fallback: "10000",
  },
  RELAIS_MAIL_GRACE_MS: {
    meaning: "unseen this long → mailed",
    schema: integer(0, 604_800_000),
    fallback: "600000",
  },
  RELAIS_DIGEST_DAILY_AT: {
    meaning: "daily digest time, user's time zone",
    schema: timeOfDay,
    fallback: "08:00",
  },
  RELAIS_MAIL_RETRY_BASE_MS: {
    meaning: "first wait before retrying a mail",
    schema: integer(10, 86_400_000),
    fallback: "30000",
  },
  RELAIS_MAIL_MAX_ATTEMPTS: {
    meaning: "attempts before a mail is given up",
    schema: integer(1, 100),
    fallback: "8",
  },
  RELAIS_MAIL_BREAKER_THRESHOLD: {
    meaning: "SMTP failures in a row that open the circuit breaker",
    schema: integer(1, 1000),
    fallback: "3",
  },
  RELAIS_MAIL_BREAKER_COOLDOWN_MS: {
    meaning: "how long the open breaker waits before trying SMTP again",
    schema: integer(10, 86_400_000),
    fallback: "60000",
  },
  RELAIS_PUBLIC_URL: {
    meaning: "base of links in mails (unsubscribe)",
    schema: url(web),
    documented: "`http://HOST:PORT`",
  },
  RELAIS_APP_URL: { meaning: "base for relative payload URLs in mails", schema: url(web) },
  RELAIS_MAIL_SECRET: {
    meaning: "signs unsubscribe links (set it when users sign in with JWKS or the gateway)",
    schema: text,
    documented: "the JWT secret, else random per process",
  },
  RELAIS_CONVERSATION_POLICY: {
    meaning: "`same-structure` or `any`",
    schema: oneOf(["same-structure", "any"], 'expected "same-structure" or "any"'),
    fallback: "same-structure",
  },
  RELAIS_MAX_CONVERSATION_MEMBERS: {
    meaning: "members per conversation",
    schema: integer(2, 400),
    fallback: "100",
  },
  RELAIS_MAX_MESSAGE_LENGTH: {
    meaning: "characters per message",
    schema: integer(1, 20_000),
    fallback: "4000",
  },
  RELAIS_TYPING_INTERVAL_MS: {
    meaning: "typing broadcast at most once per interval",
    schema: integer(100, 60_000),
    fallback: "2000",
  },
  RELAIS_RATE_LIMITER: {
    meaning: "`memory`, `kv` or `redis`",
    schema: oneOf(RATE_LIMITER_KINDS, 'expected "memory", "kv" or "redis"'),
    documented: "`redis` with `REDIS_URL`, else `kv`",
  },
  RELAIS_REDIS_PREFIX: { meaning: "key prefix in Redis", schema: keyPrefix, fallback: "relais" },
  RELAIS_CLUSTER: {
    meaning: "`none` or `redis` (every store and the cluster bus on `REDIS_URL`)",
    schema: oneOf(["none", "redis"], 'expected "none" or "redis"'),
    fallback: "none",
  },
  RELAIS_RATE_MESSAGES: {
    meaning: "messages sent, edited or deleted per user (`N/window` or `off`)",
    schema: rateRule,
    fallback: "60/10s",
  },
  RELAIS_RATE_CONVERSATIONS: {
    meaning: "new conversations per user",
    schema: rateRule,
    fallback: "30/1h",
  },
  RELAIS_RATE_EVENTS: {
    meaning: "events per service key",
    schema: rateRule,
    fallback: "2000/1s",
  },
  RELAIS_RATE_CONNECTS: {
    meaning: "connection attempts per client address",
    schema: rateRule,
    fallback: "300/10s",
  },
  RELAIS_RATE_AUTH_FAILURES: {
    meaning: "failed authentications per client address",
    schema: rateRule,
    fallback: "30/1m",
  },
  RELAIS_MAX_CONNECTIONS_PER_USER: {
    meaning: "live connections per user",
    schema: integer(1, 10_000),
    fallback: "20",
  },
  RELAIS_MAX_SOCKET_BUFFER_BYTES: {
    meaning: "outgoing buffer before a slow client is cut off",
    schema: integer(65_536, 1_073_741_824),
    fallback: "4194304",
  },
  RELAIS_ALLOWED_ORIGINS: {
    meaning: "Origin allow-list for WS, SSE and CORS (`*` or origins)",
    schema: origins,
    documented: "dev: any; prod: same origin",
  },
  RELAIS_CONTROLS_REFRESH_MS: {
    meaning: "how often switches are re-read (other processes)",
    schema: integer(100, 3_600_000),
    fallback: "2000",
  },
  RELAIS_HEARTBEAT_MS: {
    meaning: "heartbeat interval; dead after two",
    schema: integer(50, 3_600_000),
    fallback: "25000",
  },
  RELAIS_IDLE_TIMEOUT_MS: {
    meaning: "idle close (4009); `0` disables it",
    schema: integer(0, 604_800_000),
    fallback: "1800000",
  },
  RELAIS_POLL_MAX_TIMEOUT_MS: {
    meaning: "longest wait of one poll",
    schema: integer(0, 600_000),
    fallback: "30000",
  },
  ...FEATURE_VARIABLES,
} satisfies Record<string, Variable>;

/** What a variable reads as: `undefined` when it is unset and has no fallback. */
type Read<V extends Variable> = V extends { fallback: string } ? v.InferOutput<V["schema"]>
  : v.InferOutput<V["schema"]> | undefined;

/** The environment read variable by variable, before it is arranged into sections. */
export type Settings<T extends Record<string, Variable> = typeof VARIABLES> = {
  [K in keyof T]: Read<T[K]>;
};

/** The environment as the process gives it. */
export type Env = Record<string, string | undefined>;

function read(variable: Variable) {
  return v.pipe(
    // A default of "" makes the object schema read a missing variable too.
    v.optional(v.string(), ""),
    v.transform((raw) => raw.trim() || variable.fallback),
    v.optional(variable.schema),
  );
}

/**
 * The schema reading every variable of `variables` from the environment; an issue's path
 * starts with the variable's name.
 */
export function envSchema<T extends Record<string, Variable>>(
  variables: T,
): v.GenericSchema<Env, Settings<T>> {
  const entries = Object.entries(variables).map(([name, variable]) => [name, read(variable)]);
  return v.object(Object.fromEntries(entries)) as unknown as v.GenericSchema<Env, Settings<T>>;
}
