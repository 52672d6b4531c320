/**
 * The adapters of every port, chosen in one place from the configuration: each port
 * names its kinds, and a kind the configuration names but no adapter implements stops
 * start-up with an error that names it.
 *
 * - store: `kv` (Deno KV at `RELAIS_KV_PATH`), or `redis` with `RELAIS_CLUSTER=redis`
 *   (the same KV adapters on a Deno KV-compatible database in Redis at `REDIS_URL`);
 * - mail transport: `smtp` when `SMTP_URL` is set, else `outbox`;
 * - rate limiter: `memory`, `kv` or `redis`, as `RELAIS_RATE_LIMITER` says (default:
 *   `redis` when `REDIS_URL` is set, else `kv`);
 * - bus: `local` (in-process), or `redis` in cluster mode (a Redis stream every node reads);
 * - ingest: `off`, or `redis` (a Redis stream of Debezium changes) when
 *   `RELAIS_INGEST_STREAM` is set, with the rules of `RELAIS_INGEST_RULES`.
 *
 * The directory, preferences, mail queue, kill switches, conversations and push
 * subscriptions live in the store's database, next to the streams.
 */

import { readFileSync } from "node:fs";
import process from "node:process";
import type { Config } from "../config.ts";
import type { ControlStore } from "../controls/control_store.ts";
import type { ChangeStream } from "../ingest/change_stream.ts";
import { createRedisChangeStream } from "../ingest/redis_change_stream.ts";
import { type IngestRule, parseRules } from "../ingest/rules.ts";
import { createKvControlStore } from "../controls/kv_control_store.ts";
import type { Directory } from "../directory/directory.ts";
import { createKvDirectory } from "../directory/kv_directory.ts";
import { createKvMailQueue } from "../mail/kv_mail_queue.ts";
import type { MailQueue } from "../mail/mail_queue.ts";
import { createOutboxTransport } from "../mail/outbox_transport.ts";
import { createSmtpTransport } from "../mail/smtp_transport.ts";
import type { MailTransport } from "../mail/transport.ts";
import type { ConversationStore } from "../messaging/conversation_store.ts";
import { createKvConversationStore } from "../messaging/kv_conversation_store.ts";
import { createKvPreferences } from "../preferences/kv_preferences.ts";
import type { PreferencesStore } from "../preferences/preferences_store.ts";
import { createKvPushStore } from "../push/kv_push_store.ts";
import type { PushStore } from "../push/push_store.ts";
import { createKvRateLimiter } from "../ratelimit/kv_rate_limiter.ts";
import { createMemoryRateLimiter } from "../ratelimit/memory_rate_limiter.ts";
import type { RateLimiter } from "../ratelimit/rate_limiter.ts";
import { createRedisClient } from "../ratelimit/redis_client.ts";
import { createRedisRateLimiter } from "../ratelimit/redis_rate_limiter.ts";
import { createKvStore } from "../store/kv_store.ts";
import { connectRedisKv } from "../store/redis_kv/redis_kv.ts";
import type { Store } from "../store/store.ts";
import { type Bus, createLocalBus } from "../cluster/bus.ts";
import { createRedisBus } from "../cluster/redis_bus.ts";
import { type ClusterEpoch, createClusterEpoch } from "../cluster/cluster_epoch.ts";
import { createLeases, type Leases } from "../cluster/leases.ts";
import { createSingletons, type Singletons } from "../cluster/singletons.ts";
import { getLog } from "../log.ts";
import { MAILER_ID } from "../mail/mailer_actor.ts";
import { PUSH_ID } from "../push/push_actor.ts";

/** The adapters relais is built from. */
export interface Adapters {
  /** Streams, events, fan-out jobs, acks, inbox, tickets. */
  store: Store;
  directory: Directory;
  preferences: PreferencesStore;
  mailQueue: MailQueue;
  mailTransport: MailTransport;
  /** Kill switches and their audit log. */
  controlStore: ControlStore;
  rateLimiter: RateLimiter;
  /** Conversations, messages and blocks. */
  conversations: ConversationStore;
  /** Change-data ingest: absent when off. */
  ingest?: IngestPort;
  /** Push subscriptions and the Web Push queue: absent, Web Push is off. */
  push?: PushStore;
  /** What the nodes tell each other: in-process alone, on Redis in cluster mode. */
  bus: Bus;
  /** Cluster mode only: leases of the actors with one owner, and the streams' epoch. */
  cluster?: ClusterPort;
}

/** What only cluster mode has: the nodes share the store and agree through it. */
export interface ClusterPort {
  leases: Leases;
  /** The work one node runs at a time (mailer, sweeper, push runner, fan-out janitor). */
  singletons: Singletons;
  epoch: ClusterEpoch;
}

/** How long an actor's lease lives without a renewal, in cluster mode. */
export const LEASE_TTL_MS = 5_000;

/** The ingest's adapter: the change stream, its group, and the rules that read it. */
export interface IngestPort {
  stream: ChangeStream;
  group: string;
  rules: readonly IngestRule[];
  /** Entries pending on a consumer for longer than this are claimed by another. */
  claimIdleMs: number;
}

/**
 * Builds the adapter of `kind` among `choices`; an unknown kind is an error naming the
 * port, the kind and the kinds there are.
 */
export function pick<T>(port: string, kind: string, choices: Record<string, () => T>): T {
  if (!Object.hasOwn(choices, kind)) {
    const known = Object.keys(choices).map((k) => `"${k}"`).join(", ");
    throw new Error(`Unknown ${port} "${kind}": expected one of ${known}`);
  }
  return choices[kind]();
}

/** The mail transport `config` names: `smtp` when `SMTP_URL` is set, else the outbox. */
export function mailTransportOf(
  mail: Config["mail"],
  kind: string = mail.smtpUrl ? "smtp" : "outbox",
): MailTransport {
  return pick<MailTransport>("mail transport", kind, {
    smtp: () => {
      if (!mail.smtpUrl) throw new Error('Mail transport "smtp" needs SMTP_URL');
      return createSmtpTransport(mail.smtpUrl);
    },
    outbox: () => createOutboxTransport(mail.outboxDir),
  });
}

/** The rate limiter `config.rate.limiter` names; the `kv` one counts in `kv`. */
export function rateLimiterOf(
  config: Pick<Config, "rate" | "redisUrl">,
  kv?: Deno.Kv,
): RateLimiter {
  return pick<RateLimiter>("rate limiter", config.rate.limiter, {
    memory: () => createMemoryRateLimiter(),
    kv: () => {
      if (!kv) throw new Error('Cannot create the "kv" rate limiter: no KV handle given');
      return createKvRateLimiter(kv);
    },
    redis: () => {
      if (!config.redisUrl) {
        throw new Error('Cannot create the "redis" rate limiter: REDIS_URL is not set');
      }
      return createRedisRateLimiter(createRedisClient(config.redisUrl), {
        prefix: `${config.rate.redisPrefix}:rl`,
      });
    },
  });
}

/**
 * This node's default name: host name and process id when the host name may be read
 * (without prompting for the permission), else a random id and the process id.
 */
export function defaultNodeId(): string {
  let host: string | undefined;
  try {
    if (Deno.permissions.querySync({ name: "sys", kind: "hostname" }).state === "granted") {
      host = Deno.hostname();
    }
  } catch {
    // Not allowed: a random name.
  }
  return `${host ?? crypto.randomUUID().slice(0, 8)}-${process.pid}`;
}

/**
 * The ingest `config.ingest.kind` names: `off`, or `redis`, which reads the rules file
 * (validated: a bad rule stops start-up naming the rule and the field).
 */
export function ingestOf(
  config: Pick<Config, "ingest" | "redisUrl" | "nodeId">,
  readText: (path: string) => string = (path) => readFileSync(path, "utf8"),
): IngestPort | undefined {
  const { ingest } = config;
  return pick<IngestPort | undefined>("ingest", ingest.kind, {
    off: () => undefined,
    redis: () => {
      if (!config.redisUrl || !ingest.stream) {
        throw new Error(
          'Cannot create the "redis" ingest: REDIS_URL and RELAIS_INGEST_STREAM are needed',
        );
      }
      if (!ingest.rulesPath) {
        throw new Error('Cannot create the "redis" ingest: RELAIS_INGEST_RULES is not set');
      }
      let text: string;
      try {
        text = readText(ingest.rulesPath);
      } catch (error) {
        throw new Error(
          `Cannot read RELAIS_INGEST_RULES "${ingest.rulesPath}": ${(error as Error).message}`,
        );
      }
      const rules = parseRules(text, ingest.rulesPath);
      return {
        stream: createRedisChangeStream({
          url: config.redisUrl,
          stream: ingest.stream,
          group: ingest.group,
          consumer: config.nodeId ?? defaultNodeId(),
        }),
        group: ingest.group,
        rules,
        claimIdleMs: ingest.claimIdleMs,
      };
    },
  });
}

/**
 * The database every KV adapter is built on, as `config.store` names it: `opened` (Deno
 * KV) for `kv`, the Redis KV at `REDIS_URL` (under `<RELAIS_REDIS_PREFIX>:kv`) for `redis`.
 */
export function storeKvOf(
  config: Pick<Config, "store" | "redisUrl" | "rate">,
  opened: Deno.Kv | undefined,
): Deno.Kv {
  return pick<Deno.Kv>("store", config.store, {
    kv: () => {
      if (!opened) throw new Error('Cannot create the "kv" store: no Deno KV database opened');
      return opened;
    },
    redis: () => {
      if (!config.redisUrl) {
        throw new Error('Cannot create the "redis" store: REDIS_URL is not set');
      }
      return connectRedisKv(config.redisUrl, { prefix: `${config.rate.redisPrefix}:kv` });
    },
  });
}

/** The cluster bus: in-process for one node, on `REDIS_URL` in cluster mode. */
export function busOf(
  config: Pick<Config, "store" | "redisUrl" | "nodeId" | "rate">,
  onError: (message: string, error: unknown) => void = () => {},
): Bus {
  const node = config.nodeId ?? defaultNodeId();
  return pick<Bus>("bus", config.store === "redis" ? "redis" : "local", {
    local: () => createLocalBus(node, onError),
    redis: () => {
      if (!config.redisUrl) throw new Error('Cannot create the "redis" bus: REDIS_URL is not set');
      return createRedisBus(config.redisUrl, {
        node,
        prefix: `${config.rate.redisPrefix}:cluster`,
        onError,
      });
    },
  });
}

/**
 * Every adapter, on the open Deno KV database `opened` (which the `redis` store does not
 * need) and what `config` names.
 */
export function createAdapters(given: Config, opened: Deno.Kv | undefined): Adapters {
  // One name for this node everywhere: the bus, the leases and the ingest's consumer.
  const node = given.nodeId ?? defaultNodeId();
  const config: Config = { ...given, nodeId: node };
  // First: a bad rules file stops start-up before any other connection is opened.
  const ingest = ingestOf(config);
  const kv = storeKvOf(config, opened);
  // The store's kind picked the database (`storeKvOf`): every adapter is built on it.
  const store = createKvStore(kv, { recentWindowMs: config.delivery.recentWindowMs });
  const cluster = config.store === "redis" ? clusterOf(kv, node) : undefined;
  return {
    store,
    directory: createKvDirectory(kv),
    preferences: createKvPreferences(kv),
    // In a cluster, a mailer that lost its lease claims no mail.
    mailQueue: createKvMailQueue(
      kv,
      cluster ? { fence: (op) => cluster.singletons.fence("mailer", MAILER_ID, op) } : {},
    ),
    mailTransport: mailTransportOf(config.mail),
    controlStore: createKvControlStore(kv),
    rateLimiter: rateLimiterOf(config, kv),
    conversations: createKvConversationStore(kv),
    ...(ingest ? { ingest } : {}),
    // In a cluster, a push runner that lost its lease claims no push.
    push: createKvPushStore(
      kv,
      cluster ? { fence: (op) => cluster.singletons.fence("push", PUSH_ID, op) } : {},
    ),
    bus: busOf(config),
    ...(cluster ? { cluster } : {}),
  };
}

/** What cluster mode adds, on the shared database `kv`, for `node`. */
function clusterOf(kv: Deno.Kv, node: string): ClusterPort {
  const leases = createLeases(kv, { node, ttlMs: LEASE_TTL_MS });
  const log = getLog("cluster");
  let waitTold = false;
  return {
    leases,
    singletons: createSingletons({
      leases,
      ttlMs: LEASE_TTL_MS,
      onError: (message, error) => log.error(message, { error: String(error) }),
    }),
    epoch: createClusterEpoch(kv, {
      // Told once: the node waits for its store at start (see `STORE_WAIT_MS`).
      onWait: (error) => {
        if (waitTold) return;
        waitTold = true;
        log.warning("The store does not answer yet; waiting for it before starting", {
          error: error.message,
        });
      },
    }),
  };
}
