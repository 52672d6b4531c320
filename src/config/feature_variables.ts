/**
 * The variables of relais's optional parts, declared like the others (see
 * `variables.ts`): the node's name, the change-data ingest, retention and Web Push.
 */

import * as v from "valibot";
import { DEFAULT_PUSH_ENDPOINT_HOSTS } from "../push/subscription.ts";
import { retentionPeriod } from "../retention/period.ts";
import { integer, keyPrefix, text, type ValueSchema, type Variable } from "./values.ts";

/** A VAPID key: base64url of `bytes` bytes. */
const vapidKey = (bytes: number, what: string): ValueSchema<string> =>
  v.pipe(
    v.string(),
    v.regex(/^[A-Za-z0-9_-]+$/, `expected ${what} in unpadded base64url`),
    v.check((s) => Math.floor(s.length * 3 / 4) === bytes, `expected ${what} of ${bytes} bytes`),
  );

/** A VAPID subject: a `mailto:` address or an `https:` URL. */
const vapidSubject: ValueSchema<string> = v.pipe(
  v.string(),
  v.check(
    (s) => /^mailto:[^\s@]+@[^\s@]+$/.test(s) || (URL.canParse(s) && s.startsWith("https://")),
    'expected a "mailto:" address or an "https://" URL',
  ),
);

/** Comma-separated host names, each exact or `*.suffix`. */
const hostPatterns: ValueSchema<string[]> = v.pipe(
  v.string(),
  v.transform((s) => s.split(",").map((h) => h.trim().toLowerCase()).filter((h) => h !== "")),
  v.minLength(1, "expected at least one host"),
  v.check(
    (list) => list.every((h) => /^(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(h)),
    'expected host names such as "fcm.googleapis.com" or "*.notify.windows.com"',
  ),
);

/** The optional parts' environment variables by name. */
export const FEATURE_VARIABLES = {
  RELAIS_NODE_ID: {
    meaning: "this node's name (ingest consumer, cluster)",
    schema: keyPrefix,
    documented: "host name + pid",
  },
  RELAIS_INGEST_STREAM: {
    meaning: "Redis stream of Debezium change events to ingest (needs `REDIS_URL`)",
    schema: keyPrefix,
    documented: "unset: off",
  },
  RELAIS_INGEST_GROUP: {
    meaning: "consumer group of the ingest",
    schema: keyPrefix,
    fallback: "relais",
  },
  RELAIS_INGEST_RULES: {
    meaning: "JSON file of the ingest rules (needed with `RELAIS_INGEST_STREAM`)",
    schema: text,
  },
  RELAIS_INGEST_CLAIM_IDLE_MS: {
    meaning: "an entry pending this long on another consumer is claimed",
    schema: integer(100, 86_400_000),
    fallback: "30000",
  },
  RELAIS_RETENTION_ITEMS: {
    meaning: "how long durable items (streams, inboxes) are kept, with their events",
    schema: retentionPeriod,
    fallback: "90d",
  },
  RELAIS_RETENTION_EVENTS: {
    meaning: "how long the records of REALTIME and SYSTEM events without ack are kept",
    schema: retentionPeriod,
    fallback: "30d",
  },
  RELAIS_RETENTION_DEAD_LETTERS: {
    meaning: "how long delivery and mail dead letters are kept",
    schema: retentionPeriod,
    fallback: "30d",
  },
  RELAIS_RETENTION_AUDIT: {
    meaning: "how long the kill switch audit log is kept",
    schema: retentionPeriod,
    fallback: "365d",
  },
  RELAIS_RETENTION_SWEEP_MS: {
    meaning: "time between two retention sweeps",
    schema: integer(100, 86_400_000),
    fallback: "3600000",
  },
  RELAIS_VAPID_PUBLIC_KEY: {
    meaning: "Web Push: VAPID public key (base64url, uncompressed P-256 point)",
    schema: vapidKey(65, "an uncompressed P-256 public key"),
    documented: "dev: generated (kept in KV); prod unset: Web Push off",
  },
  RELAIS_VAPID_PRIVATE_KEY: {
    meaning: "Web Push: VAPID private key (base64url, 32 bytes)",
    schema: vapidKey(32, "a P-256 private key"),
    documented: "dev: generated (kept in KV); prod unset: Web Push off",
  },
  RELAIS_VAPID_SUBJECT: {
    meaning: "Web Push: who the push services may contact (`mailto:` or `https:` URL)",
    schema: vapidSubject,
    documented: "`mailto:` the address of `RELAIS_MAIL_FROM`",
  },
  RELAIS_PUSH_ENDPOINT_HOSTS: {
    meaning:
      "push services a subscription may name (`https` only; `*.` for subdomains); dev adds `http://127.0.0.1:*`",
    schema: hostPatterns,
    fallback: DEFAULT_PUSH_ENDPOINT_HOSTS.join(","),
  },
  RELAIS_PUSH_RETRY_BASE_MS: {
    meaning: "first wait before retrying a push the push service refused for now",
    schema: integer(10, 86_400_000),
    fallback: "30000",
  },
  RELAIS_PUSH_MAX_ATTEMPTS: {
    meaning: "attempts before a push is given up",
    schema: integer(1, 100),
    fallback: "8",
  },
} satisfies Record<string, Variable>;
