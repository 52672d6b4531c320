/**
 * Prometheus metrics with prom-client, on a registry of their own.
 *
 * Each {@linkcode createMetrics} call builds a fresh registry, so tests and several apps in
 * one process never share counters, and nothing is registered at import.
 */

import process from "node:process";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import { ACTOR_KINDS } from "../actors/kinds.ts";

/** The transports a live connection can use. */
export type Transport = "ws" | "sse" | "poll";

/** The instruments of one relais process and the registry that renders them. */
export interface Metrics {
  /** The registry holding every instrument below (not prom-client's global one). */
  registry: Registry;
  /** The `Content-Type` of {@linkcode Metrics.render}'s output. */
  contentType: string;
  /** `relais_connections{transport}`: open client connections. */
  connections: Gauge<"transport">;
  /** `relais_events_accepted_total{type}`: events accepted by `POST /v1/events`. */
  eventsAccepted: Counter<"type">;
  /** `relais_deliveries_total`: items sent to a client connection. */
  deliveries: Counter;
  /** `relais_acks_total`: acks received from clients. */
  acks: Counter;
  /** `relais_redeliveries_total`: unacked items sent again. */
  redeliveries: Counter;
  /** `relais_dead_letters_total`: items that ran out of retries. */
  deadLetters: Counter;
  /** `relais_actors{kind}`: live actors, read from the callback given to `setActorCounter`. */
  actors: Gauge<"kind">;
  /**
   * `relais_actor_failures_total{kind}`: actors stopped by an unexpected error (their
   * supervisor, the registry, forgets them and rebuilds them from the store).
   */
  actorFailures: Counter<"kind">;
  /** `relais_publish_to_deliver_seconds`: time from acceptance to a client send. */
  latency: Histogram;
  /** `relais_http_requests_total{method,route,status}`: HTTP responses by route pattern. */
  httpRequests: Counter<"method" | "route" | "status">;
  /**
   * `relais_ingest_entries_total{outcome}`: change-stream entries handled by the ingest:
   * `published`, `replayed` (an id already known: a re-read), `skipped` (tombstones,
   * heartbeats), `switched_off` (a kill switch), `dead` (moved to the dead-letter stream).
   */
  ingestEntries: Counter<"outcome">;
  /** `relais_ingest_dead_letters_total{reason}`: entries moved to `<stream>:dead`. */
  ingestDeadLetters: Counter<"reason">;
  /** `relais_ingest_lag`: entries of the stream not yet read by the group. */
  ingestLag: Gauge;
  /** `relais_ingest_pending`: entries read by the group and not yet acked. */
  ingestPending: Gauge;
  /** `relais_mail_queue_depth`: mail tasks waiting in the queue, as the mailer last saw. */
  mailQueueDepth: Gauge;
  /** `relais_mail_breaker_open`: 1 while the mail transport's circuit breaker is open. */
  mailBreakerOpen: Gauge;
  /** Sets the callback that counts live actors by kind; it runs at each scrape. */
  setActorCounter(count: () => Record<string, number>): void;
  /** Renders every metric in the Prometheus text format. */
  render(): Promise<string>;
}

// Readings that prom-client takes from /proc/self, which Deno only opens with
// --allow-all: without it they would read 0. They are removed rather than left wrong.
const PROC_METRICS = [
  "process_resident_memory_bytes",
  "process_virtual_memory_bytes",
  "process_heap_bytes",
  "process_open_fds",
  "process_max_fds",
];

/** Options of {@linkcode createMetrics}. */
export interface MetricsOptions {
  /** Also collect prom-client's process and runtime metrics (CPU, heap, GC, event loop). */
  defaultMetrics?: boolean;
}

/** Creates the relais instruments on a new registry. */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  const registers = [registry];
  let countActors: () => Record<string, number> = () => ({});

  if (options.defaultMetrics ?? true) {
    collectDefaultMetrics({ register: registry });
    for (const name of PROC_METRICS) registry.removeSingleMetric(name);
    new Gauge({
      name: "process_resident_memory_bytes",
      help: "Resident memory size in bytes.",
      registers,
      collect() {
        this.set(process.memoryUsage.rss());
      },
    });
  }

  const actors = new Gauge({
    name: "relais_actors",
    help: "Live actors by kind.",
    labelNames: ["kind"] as const,
    registers,
    collect() {
      let counts: Record<string, number>;
      try {
        counts = countActors();
      } catch {
        // A failing counter must not break the whole scrape; the gauge shows nothing.
        this.reset();
        return;
      }
      this.reset();
      for (const kind of ACTOR_KINDS) this.set({ kind }, counts[kind] ?? 0);
      for (const [kind, value] of Object.entries(counts)) {
        if (!(ACTOR_KINDS as readonly string[]).includes(kind)) this.set({ kind }, value);
      }
    },
  });

  const actorFailures = new Counter({
    name: "relais_actor_failures_total",
    help: "Actors stopped by an unexpected error, by kind.",
    labelNames: ["kind"] as const,
    registers,
  });
  // Every kind shows from the first scrape, so a rate over it never starts from nothing.
  for (const kind of ACTOR_KINDS) actorFailures.inc({ kind }, 0);

  return {
    registry,
    contentType: registry.contentType,
    connections: new Gauge({
      name: "relais_connections",
      help: "Open client connections by transport.",
      labelNames: ["transport"] as const,
      registers,
    }),
    eventsAccepted: new Counter({
      name: "relais_events_accepted_total",
      help: "Events accepted for delivery, by envelope type.",
      labelNames: ["type"] as const,
      registers,
    }),
    deliveries: new Counter({
      name: "relais_deliveries_total",
      help: "Items sent to client connections.",
      registers,
    }),
    acks: new Counter({
      name: "relais_acks_total",
      help: "Acks received from clients.",
      registers,
    }),
    redeliveries: new Counter({
      name: "relais_redeliveries_total",
      help: "Unacked items sent again.",
      registers,
    }),
    deadLetters: new Counter({
      name: "relais_dead_letters_total",
      help: "Items recorded as dead letters after their last retry.",
      registers,
    }),
    actors,
    actorFailures,
    latency: new Histogram({
      name: "relais_publish_to_deliver_seconds",
      help: "Time from accepting an item to sending it to a client connection.",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    httpRequests: new Counter({
      name: "relais_http_requests_total",
      help: "HTTP responses by method, route pattern and status.",
      labelNames: ["method", "route", "status"] as const,
      registers,
    }),
    ingestEntries: new Counter({
      name: "relais_ingest_entries_total",
      help: "Change-stream entries handled by the ingest, by outcome.",
      labelNames: ["outcome"] as const,
      registers,
    }),
    ingestDeadLetters: new Counter({
      name: "relais_ingest_dead_letters_total",
      help: "Change-stream entries moved to the dead-letter stream, by reason.",
      labelNames: ["reason"] as const,
      registers,
    }),
    ingestLag: new Gauge({
      name: "relais_ingest_lag",
      help: "Entries of the change stream not yet read by the ingest's group.",
      registers,
    }),
    mailQueueDepth: new Gauge({
      name: "relais_mail_queue_depth",
      help: "Mail tasks waiting in the queue, as the mailer last saw.",
      registers,
    }),
    mailBreakerOpen: new Gauge({
      name: "relais_mail_breaker_open",
      help: "1 while the mail transport's circuit breaker is open (or probing), else 0.",
      registers,
    }),
    ingestPending: new Gauge({
      name: "relais_ingest_pending",
      help: "Entries read by the ingest's group and not yet acknowledged.",
      registers,
    }),
    setActorCounter(count) {
      countActors = count;
    },
    render() {
      return registry.metrics();
    },
  };
}

/**
 * Hono middleware counting each response in `relais_http_requests_total`.
 *
 * The `route` label is the matched route pattern (`/v1/events/:id`), never the raw path,
 * so the number of series stays bounded; a request no route matched is `unmatched`.
 */
export function httpMetrics(metrics: Metrics): MiddlewareHandler {
  return async (c, next) => {
    await next();
    // After next(), routeIndex points at the handler that answered.
    const pattern = routePath(c);
    const route = c.res.status === 404 && /\*$/.test(pattern)
      ? "unmatched"
      : pattern || "unmatched";
    metrics.httpRequests.inc({ method: c.req.method, route, status: String(c.res.status) });
  };
}
