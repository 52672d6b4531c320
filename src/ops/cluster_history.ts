/**
 * The ops charts of a whole cluster. Each node keeps the history of its own instruments
 * (`metrics_history.ts`); behind a load balancer, the ops page would chart whichever node
 * answered each poll. In cluster mode, the node asked gathers the others' histories over
 * the bus and answers their sum: connections and rates add up, the latency percentiles
 * are the slowest node's (percentiles do not add), and what every node reads from the
 * shared store (mail queue, breaker, ingest lag) is taken once. Points are put together
 * by the interval they fall in; each history's last point (read at the time of the call)
 * makes the last point. A node that does not answer in time is left out, and `nodes` says
 * which nodes the answer covers.
 */

import type { History, HistoryPoint, MetricsHistory } from "./metrics_history.ts";

/** How the history reaches the other nodes of a cluster, and answers them. */
export interface HistoryPeers {
  /** The histories of the other live nodes that answered in time. */
  others(): Promise<{ node: string; history: History }[]>;
  /** Answers the other nodes' requests with this node's own history. */
  serve(own: () => Promise<History>): void;
}

/** Whether `value` has the shape of a {@linkcode History} (as another node sent it). */
export function isHistory(value: unknown): value is History {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.interval_ms === "number" && v.interval_ms > 0 && Array.isArray(v.points) &&
    v.points.every((p) => typeof p === "object" && p !== null && typeof p.t === "number");
}

const SUMMED = [
  "ws",
  "sse",
  "poll",
  "deliveries_per_s",
  "redeliveries_per_s",
  "dead_letters_per_s",
] as const;
const HIGHEST = ["p50_ms", "p99_ms", "mail_depth", "breaker", "ingest_lag"] as const;

/** The points of several nodes at one time, as one. */
function combine(t: number, points: HistoryPoint[]): HistoryPoint {
  const out = { t } as HistoryPoint;
  for (const key of SUMMED) {
    out[key] = points.reduce((sum, p) => sum + (Number.isFinite(p[key]) ? p[key] : 0), 0);
  }
  for (const key of HIGHEST) {
    const known = points.map((p) => p[key]).filter((x): x is number => typeof x === "number");
    (out as unknown as Record<string, number | null>)[key] = known.length > 0
      ? Math.max(...known)
      : null;
  }
  return out;
}

/**
 * The histories of several nodes as one: `own` first (its interval and window frame the
 * answer), then the others'.
 */
export function mergeHistories(
  own: History & { node: string },
  others: { node: string; history: History }[],
): History {
  const all = [{ node: own.node, history: own }, ...others];
  const interval = own.interval_ms;
  const since = (own.points.at(-1)?.t ?? 0) - own.window_ms;
  // By interval: each node's point in it (a node's later reading wins a tie).
  const slots = new Map<number, Map<string, HistoryPoint>>();
  const last: HistoryPoint[] = [];
  for (const { node, history } of all) {
    const points = history.points;
    points.forEach((point, i) => {
      if (i === points.length - 1) return void last.push(point);
      if (point.t < since) return;
      const slot = Math.round(point.t / interval);
      let byNode = slots.get(slot);
      if (!byNode) slots.set(slot, byNode = new Map());
      const known = byNode.get(node);
      if (!known || known.t <= point.t) byNode.set(node, point);
    });
  }
  const points = [...slots.entries()].sort((a, b) => a[0] - b[0])
    .map(([slot, byNode]) => combine(slot * interval, [...byNode.values()]));
  if (last.length > 0) points.push(combine(Math.max(...last.map((p) => p.t)), last));
  return {
    interval_ms: interval,
    window_ms: own.window_ms,
    ingest: all.some(({ history }) => history.ingest),
    points,
    nodes: all.map(({ node }) => node),
  };
}

/** `local`'s history, answered for the whole cluster through `peers`. */
export function clusterHistory(
  local: MetricsHistory,
  peers: HistoryPeers,
  node: string,
): MetricsHistory {
  peers.serve(() => local.history());
  return {
    start: () => local.start(),
    stop: () => local.stop(),
    sample: () => local.sample(),
    async history() {
      const [own, others] = await Promise.all([local.history(), peers.others()]);
      return mergeHistories({ ...own, node }, others);
    },
  };
}
