/**
 * The HTTP face of relais, composed from the services: the middleware every request
 * passes, the gates of the users' paths, then one sub-app per area of the API. The
 * OpenAPI document is generated from what is mounted here.
 */

import { Hono, type MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { secureHeaders } from "hono/secure-headers";
import type { UpgradeWebSocket } from "hono/ws";
import { createAdminRoutes } from "../../routes/admin.ts";
import { createControlRoutes } from "../../routes/controls.ts";
import { createConversationRoutes } from "../../routes/conversations.ts";
import { createDocsRoutes } from "../../routes/docs.ts";
import { createEventRoutes } from "../../routes/events.ts";
import { createHealthRoutes } from "../../routes/health.ts";
import { createIngestRoutes } from "../../routes/ingest.ts";
import { createMailRoutes } from "../../routes/mail.ts";
import { createMeRoutes } from "../../routes/me.ts";
import { createPagesRoutes } from "../../routes/pages.ts";
import { createPollRoutes } from "../../routes/poll.ts";
import { createPreferencesRoutes } from "../../routes/preferences.ts";
import { createPushRoutes } from "../../routes/push.ts";
import { createRealtimeRoutes } from "../../routes/realtime.ts";
import { createSseRoutes } from "../../routes/sse.ts";
import { createUserRoutes } from "../../routes/users.ts";
import { refuseMixedCredentials } from "../auth/middleware.ts";
import type { AppEnv } from "../auth/principal.ts";
import { pathGates } from "../controls/path_gates.ts";
import { errorHandler, notFound } from "../errors.ts";
import { getLog, requestLog } from "../log.ts";
import { httpMetrics } from "../metrics.ts";
import { createOpenApiDocument } from "../openapi.ts";
import { createDemoHelpers } from "../pages/demo_helpers.ts";
import { createUserErasure } from "../privacy/user_erasure.ts";
import { createUserExport } from "../privacy/user_export.ts";
import { createClientIp } from "../ratelimit/client_ip.ts";
import type { Services } from "./services.ts";

/** What the OpenAPI document says of the API as a whole. */
const API_INFO = {
  title: "relais",
  version: "1",
  description: [
    'Errors are `{"error": {"code", "message", "details"?, "retry_after_ms"?}}`; every duration in the API is in milliseconds (`timeout`, `retry_after_ms`, `heartbeat_ms`), except the standard `Retry-After` header (seconds).',
    "Per-IP limits (connection attempts, failed authentications) count the client address: the socket's, or the one a proxy listed in RELAIS_TRUSTED_PROXIES forwarded in X-Forwarded-For (anyone else's header is ignored). Failed authentications refuse the failing attempts only (429, WebSocket 4008), never a valid credential.",
    "Every transport (WebSocket, SSE, poll) passes one admission: the realtime kill switch and RELAIS_MAX_CONNECTIONS_PER_USER. An SSE stream that is refused says why in its `close` frame (4003 or 4008).",
  ].join("\n\n"),
};

/** Headers a browser on an allowed origin may send. */
const CORS_HEADERS = [
  "Authorization",
  "Content-Type",
  "X-API-Key",
  "X-Signed-Context",
  "X-Context-Signature",
  "X-Context-Kid",
  "Last-Event-ID",
];

/**
 * Hono's CORS middleware, for the requests it concerns: a browser's cross-origin request
 * always carries `Origin`. Others (the backend's, native clients') skip it, since it
 * touches the response before the handler runs, which makes Hono build the response
 * again; they still get `Vary: Origin` for caches.
 */
function corsFor(origins: Services["origins"]): MiddlewareHandler<AppEnv> {
  const handler = cors({
    // The demo helpers are for the demo page's own origin: no CORS, preflights included.
    origin: (origin, c) => c.req.path.startsWith("/demo/") ? null : origins.cors(origin),
    allowHeaders: CORS_HEADERS,
    allowMethods: ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    exposeHeaders: ["Retry-After", "Idempotent-Replayed"],
    maxAge: 600,
  });
  return (c, next) => {
    if (c.req.header("origin") !== undefined) return handler(c, next);
    c.header("Vary", "Origin", { append: true });
    return next();
  };
}

/** Builds the Hono app over `services`; `upgradeWebSocket` is the runtime's. */
export function createHttpApp(
  services: Services,
  upgradeWebSocket: UpgradeWebSocket,
): Hono<AppEnv> {
  const { config, adapters, auth, tickets, keys, guard, origins, metrics, sessions } = services;
  const { store } = adapters;
  const maxBodyBytes = config.limits.maxBodyBytes;
  const log = getLog("app");
  const clientIp = createClientIp(config.trustedProxies);

  const app: Hono<AppEnv> = new Hono<AppEnv>()
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
    .use(corsFor(origins))
    .use("/v1/*", refuseMixedCredentials())
    .route("/", pathGates(guard, origins))
    .route("/", createHealthRoutes({ ready: () => store.ping(), metrics }))
    // Generated from what is mounted, on the first request (every route is mounted by then).
    .route("/", createDocsRoutes(() => createOpenApiDocument(app, API_INFO)))
    .route(
      "/",
      createEventRoutes({
        keys,
        publisher: services.publisher,
        store,
        metrics,
        maxBodyBytes,
        guard,
        limits: services.limits,
        maxJsonDepth: config.limits.maxJsonDepth,
        ...(services.tracing ? { tracing: services.tracing } : {}),
      }),
    )
    .route("/", createMeRoutes({ auth, tickets, store, sessions }))
    .route(
      "/",
      createRealtimeRoutes({
        auth,
        tickets,
        protocol: services.protocol,
        upgradeWebSocket,
        guard,
        origins,
      }),
    )
    .route("/", createSseRoutes({ auth, tickets, streams: services.sseStreams }))
    .route(
      "/",
      createPollRoutes({
        auth,
        tickets,
        polls: services.polls,
        sessions,
        pollMaxTimeoutMs: config.realtime.pollMaxTimeoutMs,
      }),
    )
    .route(
      "/",
      createAdminRoutes({ keys, registry: services.registry, store, ops: services.ops }),
    )
    .route("/", createControlRoutes({ keys, controls: services.controls, maxBodyBytes }))
    .route(
      "/",
      createIngestRoutes({ keys, ...(services.ingest ? { ingest: services.ingest } : {}) }),
    )
    .route(
      "/",
      createUserRoutes({
        keys,
        directory: services.directory,
        maxBodyBytes,
        export: createUserExport({
          directory: services.directory,
          preferences: services.preferences,
          store,
          conversations: adapters.conversations,
          mail: adapters.mailQueue,
          ...(services.push ? { push: services.push.store } : {}),
        }),
        erasure: createUserErasure({
          directory: services.directory,
          preferences: services.preferences,
          store,
          conversations: adapters.conversations,
          messaging: services.messaging,
          mail: adapters.mailQueue,
          ...(adapters.push ? { push: adapters.push } : {}),
          registry: services.registry,
          disconnect(user) {
            for (const conn of services.hub.ofUser(user)) {
              sessions.detach(conn.id);
              try {
                conn.outlet.close(4001, "User deleted");
              } catch {
                // Already closed.
              }
            }
            services.registry.stop("user", user);
          },
        }),
      }),
    )
    .route(
      "/",
      createPreferencesRoutes({ auth, preferences: services.preferences, maxBodyBytes }),
    )
    .route(
      "/",
      createPushRoutes({ auth, maxBodyBytes, ...(services.push ? { push: services.push } : {}) }),
    )
    .route(
      "/",
      createConversationRoutes({ auth, keys, messaging: services.messaging, maxBodyBytes }),
    )
    .route(
      "/",
      createMailRoutes({
        keys,
        tokens: services.unsubscribeTokens,
        preferences: services.preferences,
        queue: adapters.mailQueue,
        directory: services.directory,
      }),
    )
    // The SDK, the ops page and, in development, the demo page with its helpers.
    .route(
      "/",
      createPagesRoutes(
        config.env === "development" && config.auth.jwtSecret
          ? { demo: { auth, ...createDemoHelpers(services) } }
          : {},
      ),
    );

  app.notFound(notFound);
  app.onError(errorHandler((message, error) => log.error(message, { error: String(error) })));
  return app;
}
