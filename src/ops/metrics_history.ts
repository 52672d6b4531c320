/**
 * The last minutes of the ops charts, kept in memory: a ring of readings of the
 * Prometheus instruments taken every few seconds, so that `/ops` opens on the last
 * 15 minutes rather than on an empty chart.
 *
 * Each reading keeps the counters as they are (cumulative); a point of history is the
 * difference between two readings: deliveries per second, publish → send p50 and p99 over
 * the interval (from the histogram's buckets, as Prometheus' `histogram_quantile` does),
 * redeliveries and dead letters per second, and the gauges as read. `history()` ends with
 * a point read at the time of the call, so a page polling it sees changes at once.
 */

import type { Metrics } from "../metrics.ts";

/** The mail circuit breaker's states. */
export type BreakerState = "closed" | "open" | "half-open";

/** Readings that do not come from the instruments. */
export interface ExtraReading {
  /** Queued mail tasks; `null` when unknown. */
  mailDepth: number | null;
  /** The mailer's breaker; `null` when the mailer is not running. */
  breaker: BreakerState | null;
  /** Entries of the change stream not read yet; `null` when the ingest is off. */
  ingestLag: number | null;
}

/** One reading of the instruments, counters cumulative. */
interface Reading extends ExtraReading {
  t: number;
  connections: { ws: number; sse: number; poll: number };
  deliveries: number;
  redeliveries: number;
  deadLetters: number;
  /** Cumulative bucket counts of the latency histogram, by upper bound (seconds). */
  buckets: [number, number][];
}

/** One point of the charts. */
export interface HistoryPoint {
  /** When it was read, epoch ms. */
  t: number;
  ws: number;
  sse: number;
  poll: number;
  deliveries_per_s: number;
  /** Publish → send latency percentiles over the interval, ms; `null` with no sends. */
  p50_ms: number | null;
  p99_ms: number | null;
  redeliveries_per_s: number;
  dead_letters_per_s: number;
  mail_depth: number | null;
  /** 0 closed, 1 half-open, 2 open; `null` when the mailer is not running. */
  breaker: 0 | 1 | 2 | null;
  ingest_lag: number | null;
}

/** What `GET /v1/admin/metrics/history` answers. */
export interface History {
  interval_ms: number;
  window_ms: number;
  /** Whether the change-data ingest is on (its lag is charted). */
  ingest: boolean;
  /** Oldest first; the last one is read at the time of the call. */
  points: HistoryPoint[];
  /** In a cluster, the nodes whose points it sums (`cluster_history.ts`). */
  nodes?: string[];
}

/** Dependencies of {@linkcode createMetricsHistory}. */
export interface MetricsHistoryDeps {
  metrics: Pick<
    Metrics,
    "connections" | "deliveries" | "redeliveries" | "deadLetters" | "latency"
  >;
  /** Reads the mail queue, the breaker and the ingest lag. */
  extra(): Promise<ExtraReading>;
  /** Whether the ingest is on. */
  ingest: boolean;
  /** Time between two readings (default 5 s). */
  intervalMs?: number;
  /** How far back the history goes (default 15 min). */
  windowMs?: number;
  onError(message: string, error: unknown): void;
  now?: () => number;
}

/** The history of the ops charts; built by {@linkcode createMetricsHistory}. */
export interface MetricsHistory {
  /** Takes a first reading and then one every interval. */
  start(): Promise<void>;
  stop(): void;
  /** Takes one reading now and keeps it (what the timer does). */
  sample(): Promise<void>;
  /** The points of the window, plus one read now. */
  history(): Promise<History>;
}

const BREAKER: Record<BreakerState, 0 | 1 | 2> = { "closed": 0, "half-open": 1, "open": 2 };

/** The quantile `q` of a histogram's bucket counts (cumulative, by upper bound), or null. */
export function bucketQuantile(q: number, buckets: [number, number][]): number | null {
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [bound, count] of buckets) {
    if (count >= rank) {
      // Beyond the last finite bound: the best answer is that bound.
      if (!Number.isFinite(bound)) return lowerBound;
      const inBucket = count - lowerCount;
      return inBucket <= 0
        ? bound
        : lowerBound + (bound - lowerBound) * ((rank - lowerCount) / inBucket);
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return lowerBound;
}

async function total(metric: { get(): Promise<{ values: { value: number }[] }> }) {
  return (await metric.get()).values.reduce((sum, v) => sum + v.value, 0);
}

/** Creates the history; call `start()` to begin sampling. */
export function createMetricsHistory(deps: MetricsHistoryDeps): MetricsHistory {
  const now = deps.now ?? Date.now;
  const intervalMs = deps.intervalMs ?? 5_000;
  const windowMs = deps.windowMs ?? 15 * 60_000;
  // One reading more than the window holds, so that its oldest point has a predecessor.
  const capacity = Math.ceil(windowMs / intervalMs) + 1;
  const ring: Reading[] = [];
  let timer: ReturnType<typeof setInterval> | undefined;
  let sampling: Promise<void> | undefined;

  async function read(): Promise<Reading> {
    const m = deps.metrics;
    const [connections, deliveries, redeliveries, deadLetters, latency, extra] = await Promise
      .all([
        m.connections.get(),
        total(m.deliveries),
        total(m.redeliveries),
        total(m.deadLetters),
        m.latency.get(),
        deps.extra(),
      ]);
    const byTransport = { ws: 0, sse: 0, poll: 0 };
    for (const { labels, value } of connections.values) {
      const transport = labels.transport;
      if (transport === "ws" || transport === "sse" || transport === "poll") {
        byTransport[transport] += value;
      }
    }
    const buckets: [number, number][] = latency.values
      .filter((v) => v.metricName?.endsWith("_bucket"))
      .map((v) => [v.labels.le === "+Inf" ? Infinity : Number(v.labels.le), v.value]);
    buckets.sort((a, b) => a[0] - b[0]);
    return {
      t: now(),
      connections: byTransport,
      deliveries,
      redeliveries,
      deadLetters,
      buckets,
      ...extra,
    };
  }

  function point(before: Reading | undefined, after: Reading): HistoryPoint {
    const seconds = before ? Math.max(0.001, (after.t - before.t) / 1000) : 1;
    // A counter that went down was reset (a new registry): count from zero.
    const rate = (a: number, b: number | undefined) =>
      before === undefined ? 0 : Math.max(0, a - (b !== undefined && b <= a ? b : 0)) / seconds;
    const delta: [number, number][] = after.buckets.map(([bound, count]) => {
      const prior = before?.buckets.find(([b]) => b === bound)?.[1] ?? 0;
      return [bound, before === undefined ? 0 : Math.max(0, count - prior)];
    });
    const ms = (s: number | null) => (s === null ? null : Math.round(s * 100_000) / 100);
    return {
      t: after.t,
      ...after.connections,
      deliveries_per_s: rate(after.deliveries, before?.deliveries),
      p50_ms: ms(bucketQuantile(0.5, delta)),
      p99_ms: ms(bucketQuantile(0.99, delta)),
      redeliveries_per_s: rate(after.redeliveries, before?.redeliveries),
      dead_letters_per_s: rate(after.deadLetters, before?.deadLetters),
      mail_depth: after.mailDepth,
      breaker: after.breaker === null ? null : BREAKER[after.breaker],
      ingest_lag: after.ingestLag,
    };
  }

  function sample(): Promise<void> {
    // One reading at a time: a slow store never piles readings up.
    sampling ??= read().then((reading) => {
      ring.push(reading);
      if (ring.length > capacity) ring.splice(0, ring.length - capacity);
    }).catch((error) => deps.onError("Cannot read the metrics history", error))
      .finally(() => sampling = undefined);
    return sampling;
  }

  return {
    async start() {
      clearInterval(timer);
      await sample();
      timer = setInterval(() => void sample(), intervalMs);
    },
    stop() {
      clearInterval(timer);
      timer = undefined;
    },
    sample,
    async history() {
      const live = await read();
      const since = live.t - windowMs;
      const points: HistoryPoint[] = [];
      for (let i = 1; i < ring.length; i++) {
        if (ring[i].t >= since) points.push(point(ring[i - 1], ring[i]));
      }
      points.push(point(ring.at(-1), live));
      return { interval_ms: intervalMs, window_ms: windowMs, ingest: deps.ingest, points };
    },
  };
}
