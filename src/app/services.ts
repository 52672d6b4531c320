/**
 * The services and actors of one relais process, wired from the adapters: who gives
 * what to whom, read top to bottom. Nothing here speaks HTTP (see `http.ts`).
 *
 * The path of an event: the publisher stores it, the stream heads give each target a
 * seq, live delivery hands the items to the heads, each head releases them in order to
 * its user's actor, and the actor sends frames through the hub to the connections.
 */

import { createRegistry, type Registry } from "../../actors/registry.ts";
import { createDirectoryAudienceResolver } from "../audience/directory_audience.ts";
import { createServiceKeys, type ServiceKeys } from "../auth/service_keys.ts";
import { createTickets, type Tickets } from "../auth/tickets.ts";
import { createUserAuth, type UserAuth, type UserAuthOptions } from "../auth/user_auth.ts";
import type { Config } from "../config.ts";
import { subjectOf } from "../controls/control.ts";
import { type Controls, createControls } from "../controls/controls.ts";
import { createGuard, type Guard } from "../controls/guard.ts";
import { createOriginPolicy, type OriginPolicy } from "../controls/origins.ts";
import { createLiveDelivery } from "../delivery/live_delivery.ts";
import { createPublisher, type Publisher } from "../delivery/publisher.ts";
import { createDeliveryRecorder, type DeliveryRecorder } from "../delivery/recorder.ts";
import { createStreamHeads, type StreamHeads } from "../delivery/stream_heads.ts";
import { defineUserActors } from "../delivery/user_actors.ts";
import { withClaimsRefresh } from "../directory/claims_refresh.ts";
import type { Directory } from "../directory/directory.ts";
import type { Ingest } from "../ingest/ingest.ts";
import { wireIngest } from "../ingest/ingest_service.ts";
import { withDirectoryIdentity } from "../directory/identity.ts";
import { getLog } from "../log.ts";
import { MAILER_ID, notifyMailer } from "../mail/mailer_actor.ts";
import { wireMail } from "../mail/mail_service.ts";
import type { UnsubscribeTokens } from "../mail/unsubscribe.ts";
import {
  type ConversationActors,
  defineConversationActors,
} from "../messaging/conversation_actors.ts";
import { createMessaging, type Messaging } from "../messaging/messaging.ts";
import { createPresence } from "../messaging/presence.ts";
import { type PushServices, wirePush } from "../push/push_service.ts";
import { createMetrics, type Metrics } from "../metrics.ts";
import {
  createOpsServices,
  type OpsHistoryOptions,
  type OpsServices,
} from "../ops/ops_services.ts";
import { createFanoutPlans } from "../preferences/fanout_plan.ts";
import type { PreferencesStore } from "../preferences/preferences_store.ts";
import { createRateLimits, type RateLimits } from "../ratelimit/rate_limits.ts";
import { defineRetentionActor, retentionSettings } from "../retention/retention_actor.ts";
import { createHub, type Hub } from "../realtime/hub.ts";
import { type Transports, wireTransports } from "../realtime/transports.ts";
import { createTracing, type Tracing } from "../tracing.ts";
import { shareControls } from "../cluster/shared_controls.ts";
import { readCaches } from "../cluster/shared_caches.ts";
import { type ClusterNode, createClusterNode } from "../cluster/cluster_node.ts";
import { PUSH_ID } from "../push/push_actor.ts";
import { type Adapters, LEASE_TTL_MS } from "./adapters.ts";

/** What the services are built from. */
export interface ServicesDeps extends Adapters {
  config: Config;
  metrics?: Metrics;
  userAuth?: UserAuthOptions;
  /** How the ops page's metrics history samples (default: every 5 s, 15 min). */
  opsHistory?: OpsHistoryOptions;
}

/** The services of one process, as the HTTP layer and the entry points reach them. */
export interface Services extends Transports {
  config: Config;
  adapters: Adapters;
  metrics: Metrics;
  registry: Registry;
  hub: Hub;
  recorder: DeliveryRecorder;
  /** The directory and preferences, read through short-lived caches. */
  directory: Directory;
  preferences: PreferencesStore;
  auth: UserAuth;
  tickets: Tickets;
  keys: ServiceKeys;
  controls: Controls;
  limits: RateLimits;
  origins: OriginPolicy;
  guard: Guard;
  messaging: Messaging;
  unsubscribeTokens: UnsubscribeTokens;
  publisher: Publisher;
  /** Change-data ingest from the platform's stream; absent when off. */
  ingest?: Ingest;
  /** The users' stream heads on this node. */
  heads: StreamHeads;
  /** The ops page's metrics history and lookups. */
  ops: OpsServices;
  /** Web Push: absent when off (production without VAPID keys). */
  push?: PushServices;
  /** Traces of events and messages (`RELAIS_TRACES=on`); absent when off. */
  tracing?: Tracing;
  /** Cluster mode only: what the node shares with the others over the bus. */
  clusterNode?: ClusterNode;
}

/** Wires the services and defines the actors (none is started here). */
export function createServices(deps: ServicesDeps): Services {
  const { config, store } = deps;
  const log = getLog("app");
  const onError = (message: string, error: unknown) => log.error(message, { error: String(error) });

  const metrics = deps.metrics ?? createMetrics();
  // Off by default: then nothing on the delivery path creates a span or carries a trace.
  const tracing = config.traces ? createTracing() : undefined;
  const registry = createRegistry({ metrics });
  metrics.setActorCounter(() => registry.counts());
  const hub = createHub({
    maxBufferedBytes: config.limits.maxSocketBufferBytes,
    // Both are declared below; the hub calls them only once connections exist.
    filter: (conn, frame) => guard.filter(conn, frame),
    onOverflow: (conn) => transports.sessions.detach(conn.id),
    // Cluster mode: every node hears who connects to this one.
    onUser: (user, connected) => node?.presence.local(user, connected),
  });
  const recorder = createDeliveryRecorder(store, {
    intervalMs: 50,
    onError: (e) => onError("Recording deliveries failed", e),
    // Declared below; called only once deliveries are recorded.
    stored: (user) => heads.whenStored(user),
  });

  // Entries and preferences are read on every delivery path: kept in memory, kept true.
  // A directory write reaches the guard once it is built (below): a user who joins a
  // switched structure or role is held to the switch on their open connections too.
  let directoryWritten = (_ids: readonly string[]) => {};
  const { directory, preferences } = readCaches(
    deps,
    deps.cluster && deps.bus,
    onError,
    (ids) => directoryWritten(ids),
  );
  // Memberships come from the directory; claims only add to them (and, when configured,
  // refresh the directory entry).
  const baseAuth = createUserAuth(config.auth, deps.userAuth);
  const auth = withDirectoryIdentity(
    config.directoryFromClaims ? withClaimsRefresh(baseAuth, directory, { onError }) : baseAuth,
    directory,
    { onError },
  );
  const tickets = createTickets(store);
  const keys = createServiceKeys(config.auth.serviceKeys);

  const controls = createControls({
    store: deps.controlStore,
    refreshMs: config.controlsRefreshMs,
    onError,
  });
  // A change of switches reaches every node within a second, through the bus.
  shareControls(controls, deps.bus, onError);
  const limits = createRateLimits(deps.rateLimiter, config.rate, { onError });
  const origins = createOriginPolicy(config.allowedOrigins);
  const guard = createGuard({
    controls,
    limits,
    hub,
    auth,
    maxConnectionsPerUser: config.limits.maxConnectionsPerUser,
    detach: (connId) => transports.sessions.detach(connId),
    onError,
  });
  directoryWritten = (ids) => {
    for (const id of ids) {
      if (!guard.knows(id)) continue;
      directory.get(id).then((entry) => {
        if (entry) guard.directoryChanged(id, entry);
      }).catch((e) => onError(`Reading the directory entry of "${id.slice(0, 100)}" failed`, e));
    }
  };

  // Every new item reaches a user through their stream head, which passes it on to their
  // actor in seq order (items of users without a head go straight to it).
  // Cluster mode: the store allocates every seq, the heads put in order what the bus brings
  // from every node, and live items, acks, presence and wake-ups travel on the bus.
  const cluster = deps.cluster;
  const node = cluster && createClusterNode({
    ...cluster,
    bus: deps.bus,
    registry,
    hub,
    store,
    conversations: deps.conversations,
    leaseTtlMs: LEASE_TTL_MS,
    recentWindowMs: config.delivery.recentWindowMs,
    actorIdleMs: config.delivery.actorIdleMs,
    resumeFanouts: (ids) => publisher.resumeUnfinished(ids),
    onError,
  });
  const heads = createStreamHeads({
    store,
    release: (user, live) => userActors.deliver(user, live),
    recentWindowMs: config.delivery.recentWindowMs,
    onError,
    ...(node ? { follow: node.follow((user, item) => messaging.renderItem(user, item)) } : {}),
  });
  const localLive = createLiveDelivery({
    heads,
    registry,
    mailDue(acceptedAt, urgent) {
      const dueAt = acceptedAt + (urgent ? 0 : config.mailer.graceMs);
      if (node) node.wake("mailer", MAILER_ID, { type: "mail.queued", dueAt });
      else notifyMailer(registry, dueAt);
    },
  });
  const acked = (user: string, id: string) =>
    transports.sessions.notify(user, { type: "ack.received", id });
  const clusterLive = node?.live(localLive, acked);
  const live = clusterLive ?? localLive;
  const userActors = defineUserActors({
    registry,
    store,
    heads,
    hub,
    metrics,
    recorder,
    ackBaseMs: config.delivery.ackRetryBaseMs,
    idleMs: config.delivery.actorIdleMs,
    pacing: {
      lowWindowMs: config.pacing.lowWindowMs,
      pushBudget: config.pacing.pushBudget,
      budgetWindowMs: config.pacing.pushBudgetWindowMs,
    },
    onError,
    onPresence: (user, status) => messaging.presenceChanged(user, status),
    ...(tracing ? { tracing } : {}),
  });

  // Conversation actors: the single writers of their messages (in a cluster, on its owner).
  const clusterActors = (local: ConversationActors) => node?.conversations(local) ?? local;
  const messaging = createMessaging({
    store: deps.conversations,
    actors: clusterActors(defineConversationActors({
      registry,
      store: deps.conversations,
      hub,
      users: { deliver: live.deliverItem },
      seqs: heads,
      ...(tracing ? { tracing } : {}),
      limits: {
        maxMembers: config.messaging.maxMembers,
        maxMessageLength: config.messaging.maxMessageLength,
        typingMs: config.messaging.typingMs,
        idleMs: config.delivery.actorIdleMs,
        maxBatch: 32,
      },
      onError,
      ...(node ? { toUsers: node.toUsers } : {}),
    })),
    presence: createPresence({
      store: deps.conversations,
      registry,
      hub,
      onError,
      ...(node ? { toUsers: node.toUsers, isOnline: node.presence.isOnline } : {}),
    }),
    policy: config.messaging.policy,
    maxMembers: config.messaging.maxMembers,
    structuresOf: async (user: string) =>
      (await directory.get(user))?.structures ?? await deps.conversations.structuresOf(user),
    countConversation: (user: string) => guard.consumeConversation(user),
    onError,
    ...(tracing ? { tracing } : {}),
  });

  const unsubscribeTokens = wireMail({
    config,
    registry,
    metrics,
    queue: deps.mailQueue,
    store,
    directory,
    preferences,
    transport: deps.mailTransport,
    emailAllowed: (person) => guard.emailEnabled(subjectOf(person.id, person)),
    claim: node !== undefined,
    onError,
  });

  // Retention: what is older than its kind's period leaves the store, in small steps.
  defineRetentionActor({
    registry,
    store,
    settings: retentionSettings(config.retention.periods, config.retention.sweepMs),
    onError,
  });

  // Web Push: NOTIFICATIONs for targets offline, through a queue filled after each batch.
  const push = config.push.enabled && deps.push
    ? wirePush({
      pushStore: deps.push,
      config,
      registry,
      store,
      directory,
      preferences,
      hub,
      ...(node
        ? {
          isLive: node.presence.isOnline,
          wake: (dueAt: number) => node.wake("push", PUSH_ID, { type: "push.queued", dueAt }),
          claim: true,
        }
        : {}),
      controls,
      onGenerated: () => log.info("Generated the VAPID keys of development Web Push"),
      onError,
    }, live)
    : undefined;

  const publisher = createPublisher({
    store,
    audience: createDirectoryAudienceResolver(directory, {
      maxAudience: config.limits.maxAudience,
    }),
    syncFanoutLimit: 1000,
    // In cluster mode the store allocates every seq and keeps every item, ephemeral ones too.
    ...(cluster ? {} : { seqs: heads }),
    // Cluster mode: a fan-out job runs under its lease, so that no two nodes run it.
    ...(cluster
      ? {
        jobLeases: {
          hold: <T>(id: string, work: () => Promise<T>) =>
            cluster.singletons.hold("fanout", id, work),
        },
      }
      : {}),
    onError: (id, e) => onError(`Fan-out of event "${id}" failed`, e),
    onWritten: (id, user, written) => recorder.written(id, user, written),
    claims: recorder,
    plan: createFanoutPlans({ preferences, graceMs: config.mailer.graceMs }),
    deliverLive: push?.deliverLive ?? live.deliverBatch,
    ...(tracing ? { tracing } : {}),
  });

  const transports = wireTransports({
    resumed: () => publisher.resumed(),
    config,
    store,
    registry,
    hub,
    metrics,
    recorder,
    heads,
    renderItem: messaging.renderItem,
    admission: guard,
    ...(clusterLive ? { onAck: clusterLive.announceAck } : {}),
    auth,
    tickets,
    guard,
    messaging,
    onError,
  });
  // The platform's change stream: each change published as `POST /v1/events` would, and
  // acked once durable.
  const ingest = deps.ingest &&
    wireIngest({
      ...deps.ingest,
      publisher,
      guard,
      metrics,
      ...(tracing ? { tracing } : {}),
      onError,
    });

  const ops = createOpsServices({
    node: deps.bus.node,
    metrics,
    registry,
    hub,
    heads,
    store,
    directory,
    conversations: deps.conversations,
    controls,
    mailQueue: deps.mailQueue,
    mailerId: MAILER_ID,
    ingest: ingest !== undefined,
    ...(deps.opsHistory ? { history: deps.opsHistory } : {}),
    detach: (connId) => transports.sessions.detach(connId),
    ...(node ? { peers: node.lookupPeers, historyPeers: node.historyPeers } : {}),
    onError,
  });

  return {
    config,
    adapters: deps,
    metrics,
    registry,
    hub,
    recorder,
    directory,
    preferences,
    auth,
    tickets,
    keys,
    controls,
    limits,
    origins,
    guard,
    messaging,
    unsubscribeTokens,
    publisher,
    ...transports,
    ...(ingest ? { ingest } : {}),
    heads,
    ops,
    ...(tracing ? { tracing } : {}),
    ...(push ? { push: push.services } : {}),
    ...(node ? { clusterNode: node } : {}),
  };
}
