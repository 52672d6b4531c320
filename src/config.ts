/**
 * Configuration from the environment, validated at start-up.
 *
 * {@linkcode loadConfig} is pure: it takes the environment as a record, so tests build
 * configs without touching the process. A bad value throws a {@linkcode ConfigError}
 * whose message is one line naming the variable.
 */

import * as v from "valibot";

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
  };
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
    },
  };
}
