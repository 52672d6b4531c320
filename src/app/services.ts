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
import { withEntryCache } from "../directory/entry_cache.ts";
import type { Ingest } from "../ingest/ingest.ts";
import { wireIngest } from "../ingest/ingest_service.ts";
import { withDirectoryIdentity } from "../directory/identity.ts";
import { getLog } from "../log.ts";
import { createMailer } from "../mail/mailer.ts";
import {
  defineMailerActor,
  MAILER_ID,
  mailerSettings,
  notifyMailer,
} from "../mail/mailer_actor.ts";
import { createUnsubscribeTokens, type UnsubscribeTokens } from "../mail/unsubscribe.ts";
import { defineConversationActors } from "../messaging/conversation_actors.ts";
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
import { withPreferencesCache } from "../preferences/preferences_cache.ts";
import type { PreferencesStore } from "../preferences/preferences_store.ts";
import { createRateLimits, type RateLimits } from "../ratelimit/rate_limits.ts";
import { defineRetentionActor, retentionSettings } from "../retention/retention_actor.ts";
import { createHub, type Hub } from "../realtime/hub.ts";
import { createPollSessions, type PollSessions } from "../realtime/poll_sessions.ts";
import { createSessions, type Sessions } from "../realtime/session.ts";
import { createSseStreams, type SseStreams } from "../realtime/sse_streams.ts";
import { createWsProtocol, type WsProtocol } from "../realtime/ws_protocol.ts";
import { createTracing, type Tracing } from "../tracing.ts";
import { shareControls } from "../cluster/shared_controls.ts";
import { createClusterDelivery, followStore } from "../cluster/cluster_delivery.ts";
import { type ClusterPresence, createClusterPresence } from "../cluster/cluster_presence.ts";
import type { Adapters } from "./adapters.ts";

/** What the services are built from. */
export interface ServicesDeps extends Adapters {
  config: Config;
  metrics?: Metrics;
  userAuth?: UserAuthOptions;
  /** How the ops page's metrics history samples (default: every 5 s, 15 min). */
  opsHistory?: OpsHistoryOptions;
}

/** The services of one process, as the HTTP layer and the entry points reach them. */
export interface Services {
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
  sessions: Sessions;
  protocol: WsProtocol;
  sseStreams: SseStreams;
  polls: PollSessions;
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
  /** Who is connected to any node: cluster mode only. */
  presence?: ClusterPresence;
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
    onOverflow: (conn) => sessions.detach(conn.id),
    // Cluster mode: every node hears who connects to this one.
    onUser: (user, connected) => presence?.local(user, connected),
  });
  const recorder = createDeliveryRecorder(store, {
    intervalMs: 50,
    onError: (e) => onError("Recording deliveries failed", e),
  });

  // Entries are read at every connection and for every target of a USER audience, and
  // preferences for every target of a NOTIFICATION: kept in memory a few seconds (writes
  // through this process forget them at once).
  const directory = withEntryCache(deps.directory);
  const preferences = withPreferencesCache(deps.preferences);
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
    detach: (connId) => sessions.detach(connId),
    onError,
  });

  // Every new item reaches a user through their stream head, which passes it on to their
  // actor in seq order (items of users without a head go straight to it).
  // In cluster mode the store allocates every seq, and the heads put in order what the bus
  // brings from every node.
  const cluster = deps.cluster;
  const presence = cluster
    ? createClusterPresence({
      bus: deps.bus,
      connected: () => new Set(hub.all().map((c) => c.user)),
      onError,
    })
    : undefined;
  const heads = createStreamHeads({
    store,
    release: (user, live) => userActors.deliver(user, live),
    recentWindowMs: config.delivery.recentWindowMs,
    onError,
    ...(cluster
      ? {
        follow: followStore({
          store,
          renderItem: (item) => messaging.renderItem(item),
          epoch: cluster.epoch.current,
          recentWindowMs: config.delivery.recentWindowMs,
        }),
      }
      : {}),
  });
  const localLive = createLiveDelivery({
    heads,
    registry,
    mailDue: (acceptedAt, urgent) =>
      notifyMailer(registry, acceptedAt + (urgent ? 0 : config.mailer.graceMs)),
  });
  // What one node commits reaches the users every node holds.
  const clusterLive = cluster
    ? createClusterDelivery({
      bus: deps.bus,
      local: localLive,
      acked: (user, id) => sessions.notify(user, { type: "ack.received", id }),
      onError,
    })
    : undefined;
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

  // Conversation actors: the single writers of their messages.
  const messaging = createMessaging({
    store: deps.conversations,
    actors: defineConversationActors({
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
    }),
    presence: createPresence({ store: deps.conversations, registry, hub, onError }),
    policy: config.messaging.policy,
    maxMembers: config.messaging.maxMembers,
    structuresOf: async (user: string) =>
      (await directory.get(user))?.structures ?? await deps.conversations.structuresOf(user),
    onError,
    ...(tracing ? { tracing } : {}),
  });

  const unsubscribeTokens = createUnsubscribeTokens(config.mailer.secret);
  defineMailerActor({
    registry,
    metrics,
    mailer: createMailer({
      queue: deps.mailQueue,
      store,
      directory,
      preferences,
      transport: deps.mailTransport,
      tokens: unsubscribeTokens,
      from: config.mail.from,
      publicUrl: config.mailer.publicUrl,
      ...(config.mailer.appUrl ? { appUrl: config.mailer.appUrl } : {}),
      dailyDigestAt: config.mailer.dailyDigestAt,
      retryBaseMs: config.mailer.retryBaseMs,
      maxAttempts: config.mailer.maxAttempts,
      onError,
      // The `email` kill switch, judged on the directory entry.
      emailAllowed: (person) => guard.emailEnabled(subjectOf(person.id, person)),
    }),
    settings: mailerSettings(config.mailer.breakerThreshold, config.mailer.breakerCooldownMs),
    onError,
  });

  // Retention: what is older than its kind's period leaves the store, in small steps.
  defineRetentionActor({
    registry,
    store,
    settings: retentionSettings(config.retention.periods, config.retention.sweepMs),
    onError,
  });

  // Web Push: NOTIFICATIONs for targets without a live connection, through a durable queue
  // filled right after each batch's live delivery.
  const push = config.push.enabled && deps.push
    ? wirePush({
      pushStore: deps.push,
      endpoints: config.push.endpoints,
      ...(config.push.vapid ? { vapid: config.push.vapid } : {}),
      subject: config.push.subject,
      ...(config.mailer.appUrl ? { appUrl: config.mailer.appUrl } : {}),
      retryBaseMs: config.push.retryBaseMs,
      maxAttempts: config.push.maxAttempts,
      registry,
      store,
      directory,
      preferences,
      hub,
      ...(presence ? { isLive: presence.isOnline } : {}),
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
    onError: (id, e) => onError(`Fan-out of event "${id}" failed`, e),
    plan: createFanoutPlans({ preferences, graceMs: config.mailer.graceMs }),
    deliverLive: push?.deliverLive ?? live.deliverBatch,
    ...(tracing ? { tracing } : {}),
  });

  const sessions = createSessions({
    store,
    registry,
    hub,
    metrics,
    recorder,
    heads,
    resumeMaxItems: config.delivery.resumeMaxItems,
    recentWindowMs: config.delivery.recentWindowMs,
    heartbeatMs: config.realtime.heartbeatMs,
    renderItem: messaging.renderItem,
    admission: guard,
    ...(clusterLive ? { onAck: clusterLive.announceAck } : {}),
  });
  const protocol = createWsProtocol({
    sessions,
    auth,
    tickets,
    maxFrameBytes: config.limits.maxFrameBytes,
    helloTimeoutMs: 10_000,
    heartbeatMs: config.realtime.heartbeatMs,
    idleTimeoutMs: config.realtime.idleTimeoutMs,
    onError,
    guard,
    maxJsonDepth: config.limits.maxJsonDepth,
    messaging,
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
    detach: (connId) => sessions.detach(connId),
    onError,
  });

  const liveness = {
    sessions,
    heartbeatMs: config.realtime.heartbeatMs,
    idleTimeoutMs: config.realtime.idleTimeoutMs,
  };

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
    sessions,
    protocol,
    sseStreams: createSseStreams(liveness),
    polls: createPollSessions(liveness),
    ...(ingest ? { ingest } : {}),
    heads,
    ops,
    ...(tracing ? { tracing } : {}),
    ...(push ? { push: push.services } : {}),
    ...(presence ? { presence } : {}),
  };
}
