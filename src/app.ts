/**
 * Wiring: builds the whole server from injected adapters, so tests build a complete
 * app on `Deno.openKv(":memory:")` and entry points only open resources and serve.
 */

import { type Context, Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { UpgradeWebSocket } from "hono/ws";
import { createRegistry, type Registry } from "../actors/registry.ts";
import type { LiveItem } from "../actors/user.machine.ts";
import { createAdminRoutes } from "../routes/admin.ts";
import { createDocsRoutes } from "../routes/docs.ts";
import { createEventRoutes } from "../routes/events.ts";
import { createHealthRoutes } from "../routes/health.ts";
import { createMeRoutes } from "../routes/me.ts";
import { createPagesRoutes } from "../routes/pages.ts";
import { createPollRoutes } from "../routes/poll.ts";
import { createRealtimeRoutes } from "../routes/realtime.ts";
import { createMailRoutes } from "../routes/mail.ts";
import { createPreferencesRoutes } from "../routes/preferences.ts";
import { createUserRoutes } from "../routes/users.ts";
import { createDirectoryAudienceResolver } from "./audience/directory_audience.ts";
import { withClaimsRefresh } from "./directory/claims_refresh.ts";
import { withDirectoryIdentity } from "./directory/identity.ts";
import { withEntryCache } from "./directory/entry_cache.ts";
import { withPreferencesCache } from "./preferences/preferences_cache.ts";
import type { Directory } from "./directory/directory.ts";
import type { MailQueue } from "./mail/mail_queue.ts";
import { createMailer } from "./mail/mailer.ts";
import { defineMailerActor, MAILER_ID, notifyMailer } from "./mail/mailer_actor.ts";
import type { MailTransport } from "./mail/transport.ts";
import { createUnsubscribeTokens } from "./mail/unsubscribe.ts";
import { createFanoutPlans } from "./preferences/fanout_plan.ts";
import { isCritical } from "./preferences/preferences.ts";
import type { PreferencesStore } from "./preferences/preferences_store.ts";
import { createSseRoutes } from "../routes/sse.ts";
import { cors } from "hono/cors";
import { secureHeaders } from "hono/secure-headers";
import { createControlRoutes } from "../routes/controls.ts";
import type { ControlStore } from "./controls/control_store.ts";
import { type Controls, createControls } from "./controls/controls.ts";
import { createGuard, type Guard } from "./controls/guard.ts";
import { createMemoryControlStore } from "./controls/memory_control_store.ts";
import { createOriginPolicy } from "./controls/origins.ts";
import { createClientIp } from "./ratelimit/client_ip.ts";
import { createMemoryRateLimiter } from "./ratelimit/memory_rate_limiter.ts";
import type { RateLimiter } from "./ratelimit/rate_limiter.ts";
import { createRateLimits } from "./ratelimit/rate_limits.ts";
import { OPERATIONS } from "./api.ts";
import { createUserAudienceResolver } from "./audience/audience.ts";
import type { AppEnv } from "./auth/principal.ts";
import { createServiceKeys } from "./auth/service_keys.ts";
import { createTickets } from "./auth/tickets.ts";
import { createUserAuth, type UserAuth, type UserAuthOptions } from "./auth/user_auth.ts";
import type { Config } from "./config.ts";
import { createPublisher, type Publisher } from "./delivery/publisher.ts";
import { createDeliveryRecorder } from "./delivery/recorder.ts";
import { defineUserActors } from "./delivery/user_actors.ts";
import { createStreamHeads } from "./delivery/stream_heads.ts";
import { AppError, errorBody } from "./errors.ts";
import { getLog, requestLog } from "./log.ts";
import { createMetrics, httpMetrics, type Metrics } from "./metrics.ts";
import { createOpenApiDocument } from "./openapi.ts";
import { createHub, type Hub } from "./realtime/hub.ts";
import { createPollSessions } from "./realtime/poll_sessions.ts";
import { createSessions, type Sessions } from "./realtime/session.ts";
import { createSseStreams } from "./realtime/sse_streams.ts";
import { createWsProtocol } from "./realtime/ws_protocol.ts";
import { encodeEventFrame, encodeUpdateFrame } from "./schemas/frames.ts";
import type { Store } from "./store/store.ts";
import { createConversationRoutes } from "../routes/conversations.ts";
import { defineConversationActors } from "./messaging/conversation_actors.ts";
import type { ConversationStore } from "./messaging/conversation_store.ts";
import { createMessaging, type Messaging } from "./messaging/messaging.ts";
import { createPresence } from "./messaging/presence.ts";

/** What {@linkcode createApp} is built from. */
export interface AppDeps {
  config: Config;
  store: Store;
  /** The runtime's WebSocket upgrade (`hono/deno` or `@hono/node-ws`). */
  upgradeWebSocket: UpgradeWebSocket;
  metrics?: Metrics;
  userAuth?: UserAuthOptions;
  /**
   * Directory, preferences and mail (see `src/kv_adapters.ts`). Without a directory,
   * only `USER` audiences resolve and the directory, preferences and mail are off.
   */
  directory?: Directory;
  preferences?: PreferencesStore;
  mailQueue?: MailQueue;
  mailTransport?: MailTransport;
  /** Where kill switches live (default: in memory, lost on restart; see `src/kv_adapters.ts`). */
  controlStore?: ControlStore;
  /** Counts rate limits (default: in memory; see `src/ratelimit/rate_limiters.ts`). */
  rateLimiter?: RateLimiter;
  /** Conversations and messages (see `src/kv_adapters.ts`); without it messaging is off. */
  conversations?: ConversationStore;
}

/** A built relais: the Hono app plus the services tests and entry points reach into. */
export interface Relais {
  app: Hono<AppEnv>;
  auth: UserAuth;
  publisher: Publisher;
  registry: Registry;
  sessions: Sessions;
  hub: Hub;
  metrics: Metrics;
  /** Kill switches. */
  controls: Controls;
  /** Kill switches, rate limits and caps, as every transport and route applies them. */
  guard: Guard;
  /** Resumes the work a previous process left (unfinished fan-outs). */
  start(): Promise<void>;
  /**
   * Ends the long-lived HTTP responses (SSE streams, waiting polls) so a graceful server
   * shutdown can finish; their clients reconnect and resume. Call it once the server has
   * stopped accepting connections.
   */
  drain(): void;
  /** Stops actors and timers and flushes pending writes; the store is the caller's. */
  close(): Promise<void>;
}

/** The JSON answer of an {@linkcode AppError}, with `Retry-After` when it has a delay. */
function errorResponse(c: Context, error: AppError): Response {
  if (error.retryAfterMs !== undefined) {
    c.header("Retry-After", String(Math.ceil(error.retryAfterMs / 1000)));
  }
  return c.json(errorBody(error), error.status);
}

/** Whether the request carries a user credential (a JWT bearer or the gateway's context). */
function hasUserCredential(c: Context): boolean {
  if (c.req.header("X-Signed-Context") !== undefined) return true;
  const bearer = /^Bearer[ \t]+(\S+)/i.exec(c.req.header("Authorization") ?? "")?.[1];
  return bearer !== undefined && bearer.split(".").length === 3;
}

/** Builds relais from its adapters. */
export function createApp(deps: AppDeps): Relais {
  const { config, store } = deps;
  const log = getLog("app");
  const onError = (message: string, error: unknown) => log.error(message, { error: String(error) });

  const metrics = deps.metrics ?? createMetrics();
  const registry = createRegistry({ metrics });
  metrics.setActorCounter(() => registry.counts());
  const hub = createHub({
    maxBufferedBytes: config.limits.maxSocketBufferBytes,
    // Both are declared below; the hub calls them only once connections exist.
    filter: (conn, frame) => guard.filter(conn, frame),
    onOverflow: (conn) => sessions.detach(conn.id),
  });
  const recorder = createDeliveryRecorder(store, {
    intervalMs: 50,
    onError: (e) => onError("Recording deliveries failed", e),
  });
  const { mailQueue, mailTransport } = deps;
  // Entries are read at every connection and for every target of a USER audience, and
  // preferences for every target of a NOTIFICATION: kept in memory a few seconds (writes
  // through this process forget them at once).
  const directory = deps.directory && withEntryCache(deps.directory);
  const preferences = deps.preferences && withPreferencesCache(deps.preferences);
  const baseAuth = createUserAuth(config.auth, deps.userAuth);
  // Memberships come from the directory; claims only add to them (and, when configured,
  // refresh the directory entry).
  const auth = directory
    ? withDirectoryIdentity(
      config.directoryFromClaims ? withClaimsRefresh(baseAuth, directory, { onError }) : baseAuth,
      directory,
      { onError },
    )
    : baseAuth;
  const tickets = createTickets(store);
  const keys = createServiceKeys(config.auth.serviceKeys);
  const controls = createControls({
    store: deps.controlStore ?? createMemoryControlStore(),
    refreshMs: config.controlsRefreshMs,
    onError,
  });
  const limits = createRateLimits(deps.rateLimiter ?? createMemoryRateLimiter(), config.rate, {
    onError,
  });
  const origins = createOriginPolicy(config.allowedOrigins);
  const guard: Guard = createGuard({
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
  const heads = createStreamHeads({
    store,
    release: (user, live) => userActors.deliver(user, live),
    recentWindowMs: config.delivery.recentWindowMs,
    onError,
  });
  const deliverItem = (user: string, live: LiveItem) => heads.settle(user, live.item.seq, live);

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
    onPresence: (user, status) => messaging?.presenceChanged(user, status),
  });

  // Messaging (issue 3): conversation actors, the single writers of their messages.
  const messaging: Messaging | undefined = deps.conversations && createMessaging({
    store: deps.conversations,
    actors: defineConversationActors({
      registry,
      store: deps.conversations,
      hub,
      users: { deliver: deliverItem },
      seqs: heads,
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
    ...(directory
      ? {
        structuresOf: async (user: string) =>
          (await directory.get(user))?.structures ?? await deps.conversations!.structuresOf(user),
      }
      : {}),
    onError,
  });

  const unsubscribeTokens = createUnsubscribeTokens(config.mailer.secret);
  const mailing = directory && preferences && mailQueue && mailTransport;
  if (mailing) {
    defineMailerActor({
      registry,
      mailer: createMailer({
        queue: mailQueue,
        store,
        directory,
        preferences,
        transport: mailTransport,
        tokens: unsubscribeTokens,
        from: config.mail.from,
        publicUrl: config.mailer.publicUrl,
        ...(config.mailer.appUrl ? { appUrl: config.mailer.appUrl } : {}),
        dailyDigestAt: config.mailer.dailyDigestAt,
        retryBaseMs: config.mailer.retryBaseMs,
        maxAttempts: config.mailer.maxAttempts,
        onError,
        // The `email` kill switch, judged on the directory entry.
        emailAllowed: (person) =>
          guard.emailEnabled({
            id: person.id,
            roles: person.roles,
            structures: person.structures,
            ...(person.category ? { category: person.category } : {}),
          }),
      }),
      settings: {
        batchSize: 50,
        breakerThreshold: config.mailer.breakerThreshold,
        breakerCooldownMs: config.mailer.breakerCooldownMs,
        pollMs: 30_000,
      },
      onError,
    });
  }
  const plans = preferences
    ? createFanoutPlans({ preferences, graceMs: config.mailer.graceMs })
    : undefined;

  const publisher = createPublisher({
    store,
    audience: directory
      ? createDirectoryAudienceResolver(directory, { maxAudience: config.limits.maxAudience })
      : createUserAudienceResolver({ maxAudience: config.limits.maxAudience }),
    syncFanoutLimit: 1000,
    seqs: heads,
    onError: (id, e) => onError(`Fan-out of event "${id}" failed`, e),
    ...(plans ? { plan: plans } : {}),
    deliverLive(batch, json, envelope) {
      const acceptedAt = batch.event.acceptedAt;
      const { metadata, routing } = envelope;
      const pace = isCritical(metadata)
        ? "critical"
        : metadata.priority === "LOW"
        ? "low"
        : "normal";
      let quiet = false;
      for (const { user, item, pending, replaces } of batch.items) {
        // Recorded for order and email only: the user turned the in-app channel off. Its
        // seq is done all the same.
        if (item.quiet) {
          quiet = true;
          heads.settle(user, item.seq);
          continue;
        }
        // Offline users (no head, no actor live or being built) get it from their stream
        // when they come back.
        if (!heads.has(user) && !registry.has("user", user)) continue;
        const frame = replaces
          ? encodeUpdateFrame(item.seq, json, replaces)
          : encodeEventFrame(item.seq, json);
        deliverItem(user, {
          item,
          ...(pending ? { pending } : {}),
          frame,
          ...(item.durable ? {} : { json }),
          acceptedAt,
          pace: item.ack ? "critical" : pace,
        });
      }
      if (mailing && metadata.type === "NOTIFICATION" && routing.channels.includes("email")) {
        const urgent = quiet || metadata.priority === "HIGH";
        notifyMailer(registry, acceptedAt + (urgent ? 0 : config.mailer.graceMs));
      }
    },
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
    ...(messaging ? { renderItem: messaging.renderItem } : {}),
    admission: guard,
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
    ...(messaging ? { messaging } : {}),
  });
  const liveness = {
    sessions,
    heartbeatMs: config.realtime.heartbeatMs,
    idleTimeoutMs: config.realtime.idleTimeoutMs,
  };
  const sseStreams = createSseStreams(liveness);
  const polls = createPollSessions(liveness);

  const document = createOpenApiDocument({
    title: "relais",
    version: "1",
    description: [
      'Errors are `{"error": {"code", "message", "details"?, "retry_after_ms"?}}`; every duration in the API is in milliseconds (`timeout`, `retry_after_ms`, `heartbeat_ms`), except the standard `Retry-After` header (seconds).',
      "Per-IP limits (connection attempts, failed authentications) count the client address: the socket's, or the one a proxy listed in RELAIS_TRUSTED_PROXIES forwarded in X-Forwarded-For (anyone else's header is ignored). Failed authentications refuse the failing attempts only (429, WebSocket 4008), never a valid credential.",
      "Every transport (WebSocket, SSE, poll) passes one admission: the realtime kill switch and RELAIS_MAX_CONNECTIONS_PER_USER. An SSE stream that is refused says why in its `close` frame (4003 or 4008).",
    ].join("\n\n"),
  }, OPERATIONS);

  const clientIp = createClientIp(config.trustedProxies);

  const app = new Hono<AppEnv>()
    .use((c, next) => {
      c.set("clientIp", clientIp(c));
      return next();
    })
    .use(requestLog())
    .use(httpMetrics(metrics))
    .use(secureHeaders({
      // The API answers JSON; the pages relais serves embed nothing from elsewhere.
      crossOriginResourcePolicy: "cross-origin",
      crossOriginEmbedderPolicy: false,
    }))
    .use(cors({
      // The demo helpers are for the demo page's own origin: no CORS, preflights included.
      origin: (origin, c) => c.req.path.startsWith("/demo/") ? null : origins.cors(origin),
      allowHeaders: [
        "Authorization",
        "Content-Type",
        "X-API-Key",
        "X-Signed-Context",
        "X-Context-Signature",
        "X-Context-Kid",
        "Last-Event-ID",
      ],
      allowMethods: ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
      exposeHeaders: ["Retry-After", "Idempotent-Replayed"],
      maxAge: 600,
    }))
    .use("/v1/*", async (c, next) => {
      // A service key beside a user credential: which one would the limits and kill
      // switches apply to? Refused rather than guessed.
      if (c.req.header("X-API-Key") !== undefined && hasUserCredential(c)) {
        throw new AppError(
          "invalid_request",
          "Ambiguous credentials: send a service key (X-API-Key) or a user credential (Authorization, X-Signed-Context), not both",
          { details: [{ path: "X-API-Key", message: "not allowed beside a user credential" }] },
        );
      }
      await next();
      // Failed authentications per client address: past the limit, the failing attempts
      // (never a valid credential) are refused instead of answered.
      if (c.res.status !== 401) return;
      const refused = await guard.authFailed(c.var.clientIp);
      if (refused) c.res = errorResponse(c, refused);
    })
    .use(guard.rememberUsers())
    .use("/v1/sse", async (c, next) => {
      origins.assert(c);
      await guard.connectAttempt(c.var.clientIp);
      await next();
    })
    .use("/v1/poll", (c, next) => {
      origins.assert(c);
      return next();
    })
    // Kill switches on the user's HTTP paths (the routes authenticate on their own).
    .use("/v1/me/notifications", guard.userGate("notifications"))
    .use("/v1/me/notifications/*", guard.userGate("notifications"))
    .use("/v1/me/conversations", guard.userGate("messaging"))
    .use(
      "/v1/conversations",
      guard.userGate("messaging", (c) => c.req.method === "POST" ? "conversations" : undefined),
    )
    .use(
      "/v1/conversations/*",
      guard.userGate(
        "messaging",
        (c) =>
          c.req.method === "POST" && /^\/v1\/conversations\/[^/]+\/messages$/.test(c.req.path)
            ? "messages"
            : undefined,
      ),
    )
    .route("/", createHealthRoutes({ ready: () => store.ping(), metrics }))
    .route("/", createDocsRoutes(document))
    .route(
      "/",
      createEventRoutes({
        keys,
        publisher,
        store,
        metrics,
        maxBodyBytes: config.limits.maxBodyBytes,
        guard,
        limits,
        maxJsonDepth: config.limits.maxJsonDepth,
      }),
    )
    .route("/", createMeRoutes({ auth, tickets, store, sessions }))
    .route(
      "/",
      createRealtimeRoutes({
        auth,
        tickets,
        protocol,
        upgradeWebSocket: deps.upgradeWebSocket,
        guard,
        origins,
      }),
    )
    .route("/", createSseRoutes({ auth, tickets, streams: sseStreams }))
    .route(
      "/",
      createPollRoutes({
        auth,
        tickets,
        polls,
        sessions,
        pollMaxTimeoutMs: config.realtime.pollMaxTimeoutMs,
      }),
    )
    .route("/", createAdminRoutes({ keys, registry, store }))
    .route(
      "/",
      createControlRoutes({ keys, controls, maxBodyBytes: config.limits.maxBodyBytes }),
    );
  if (directory && preferences) {
    app.route(
      "/",
      createUserRoutes({
        keys,
        directory,
        preferences,
        store,
        maxBodyBytes: config.limits.maxBodyBytes,
        disconnect(user) {
          for (const conn of hub.ofUser(user)) {
            sessions.detach(conn.id);
            try {
              conn.outlet.close(4001, "User deleted");
            } catch {
              // Already closed.
            }
          }
          registry.stop("user", user);
        },
      }),
    );
    app.route(
      "/",
      createPreferencesRoutes({ auth, preferences, maxBodyBytes: config.limits.maxBodyBytes }),
    );
  }
  if (messaging) {
    app.route(
      "/",
      createConversationRoutes({
        auth,
        keys,
        messaging,
        maxBodyBytes: config.limits.maxBodyBytes,
      }),
    );
  }
  if (preferences && mailQueue) {
    app.route(
      "/",
      createMailRoutes({ keys, tokens: unsubscribeTokens, preferences, queue: mailQueue }),
    );
  }

  // The SDK, the ops page and, in development, the demo page with its helpers.
  app.route(
    "/",
    createPagesRoutes({
      ...(config.env === "development" && config.auth.jwtSecret
        ? {
          demo: {
            auth,
            signToken: (user, ttlSeconds) =>
              auth.signDevToken(user, { ttlSeconds, structures: ["demo"] }),
            publish: async (envelope) => (await publisher.publish(envelope)).result,
            ...(messaging
              ? {
                createConversation: async (members: [string, string]) =>
                  (await messaging.create({ kind: "service", name: "demo" }, {
                    kind: "direct",
                    members,
                  })).conversation,
              }
              : {}),
          },
        }
        : {}),
    }),
  );

  app.notFound((c) =>
    c.json(errorBody(new AppError("not_found", `No route for ${c.req.method} ${c.req.path}`)), 404)
  );
  app.onError((error, c) => {
    if (error instanceof AppError) return errorResponse(c, error);
    if (error instanceof HTTPException) {
      const status = error.status;
      const code = status === 413
        ? "payload_too_large"
        : status === 401
        ? "unauthenticated"
        : "invalid_request";
      return c.json(errorBody(new AppError(code, error.message || "Bad request")), status);
    }
    onError(`Unhandled error on ${c.req.method} ${c.req.path}`, error);
    return c.json(errorBody(new AppError("internal", "Internal error")), 500);
  });

  return {
    app,
    auth,
    publisher,
    registry,
    sessions,
    hub,
    metrics,
    controls,
    guard,
    async start() {
      await controls.start();
      const resumed = await publisher.resumeUnfinished();
      if (resumed > 0) log.info("Resumed unfinished fan-outs", { count: resumed });
      if (mailing) await registry.get("mailer", MAILER_ID);
      const conversations = await messaging?.start() ?? 0;
      if (conversations > 0) log.info("Resumed conversation fan-outs", { count: conversations });
    },
    drain() {
      sseStreams.closeAll();
      polls.closeAll();
    },
    async close() {
      sseStreams.closeAll();
      polls.closeAll();
      registry.stopAll();
      await publisher.idle();
      await recorder.close();
      mailTransport?.close();
      controls.stop();
      await limits.limiter.close();
    },
  };
}
