/**
 * The ops page's services, wired from the process's: the metrics history it charts and
 * the lookups it runs.
 */

import type { Registry } from "../../actors/registry.ts";
import type { Controls } from "../controls/controls.ts";
import type { MailQueue } from "../mail/mail_queue.ts";
import type { Metrics } from "../metrics.ts";
import { clusterHistory, type HistoryPeers } from "./cluster_history.ts";
import { type BreakerState, createMetricsHistory, type MetricsHistory } from "./metrics_history.ts";
import { createLookups, type Lookups, type LookupsDeps } from "./lookups.ts";

/** How often the history samples and how far back it goes (defaults: 5 s, 15 min). */
export interface OpsHistoryOptions {
  intervalMs?: number;
  windowMs?: number;
}

/** Dependencies of {@linkcode createOpsServices}. */
export interface OpsServicesDeps extends Omit<LookupsDeps, "controls" | "registry"> {
  metrics: Metrics;
  registry: Registry;
  controls: Controls;
  mailQueue: Pick<MailQueue, "depth">;
  /** The mailer actor's id. */
  mailerId: string;
  /** Whether the change-data ingest is on. */
  ingest: boolean;
  history?: OpsHistoryOptions;
  /** In a cluster: the charts sum every node's history, gathered over the bus. */
  historyPeers?: HistoryPeers;
  onError(message: string, error: unknown): void;
}

/** The ops page's services. */
export interface OpsServices {
  history: MetricsHistory;
  lookups: Lookups;
}

/** Queued mail tasks counted at most when the mailer is not running. */
const MAX_MAIL_DEPTH = 1_000;

/** The breaker state and queue depth in a mailer actor's context, as far as it has them. */
function mailerOf(context: unknown): { breaker: BreakerState | null; depth?: number } {
  if (typeof context !== "object" || context === null) return { breaker: null };
  const { breaker, queueDepth } = context as {
    breaker?: { state?: unknown };
    queueDepth?: unknown;
  };
  const state = breaker?.state;
  return {
    breaker: state === "closed" || state === "open" || state === "half-open" ? state : null,
    ...(typeof queueDepth === "number" ? { depth: queueDepth } : {}),
  };
}

/** Wires the history and the lookups. */
export function createOpsServices(deps: OpsServicesDeps): OpsServices {
  const { metrics, registry } = deps;
  const own = createMetricsHistory({
    metrics,
    ingest: deps.ingest,
    ...deps.history,
    onError: deps.onError,
    async extra() {
      // The running mailer knows its queue's depth: the queue is counted only without it.
      const mailer = mailerOf(registry.inspect("mailer", deps.mailerId)?.context);
      const [depth, lag] = await Promise.all([
        mailer.depth ?? deps.mailQueue.depth(MAX_MAIL_DEPTH).catch(() => null),
        deps.ingest
          ? metrics.ingestLag.get().then((g) => g.values[0]?.value ?? null)
          : Promise.resolve(null),
      ]);
      return { mailDepth: depth, breaker: mailer.breaker, ingestLag: lag };
    },
  });
  const history = deps.historyPeers ? clusterHistory(own, deps.historyPeers, deps.node) : own;
  return { history, lookups: createLookups(deps) };
}
