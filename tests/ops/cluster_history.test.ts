/**
 * The ops charts of a cluster: the histories of several nodes as one (sums, the slowest
 * node's percentiles, what the shared store says taken once), and, over a real Redis bus,
 * a node answering for every live node from their own instruments (`history_peers.ts`).
 */

import assert from "node:assert/strict";
import { createBusRpc } from "../../src/cluster/bus_rpc.ts";
import { createMetrics } from "../../src/metrics.ts";
import { createHistoryPeers } from "../../src/cluster/history_peers.ts";
import { clusterHistory, isHistory, mergeHistories } from "../../src/ops/cluster_history.ts";
import {
  createMetricsHistory,
  type History,
  type HistoryPoint,
} from "../../src/ops/metrics_history.ts";
import { ignoreRedis } from "../_support/redis_kv.ts";
import { startNodes } from "../cluster/_nodes.ts";

const INTERVAL = 5_000;

function point(t: number, fields: Partial<HistoryPoint> = {}): HistoryPoint {
  return {
    t,
    ws: 0,
    sse: 0,
    poll: 0,
    deliveries_per_s: 0,
    p50_ms: null,
    p99_ms: null,
    redeliveries_per_s: 0,
    dead_letters_per_s: 0,
    mail_depth: null,
    breaker: null,
    ingest_lag: null,
    ...fields,
  };
}

function history(points: HistoryPoint[], ingest = false): History {
  return { interval_ms: INTERVAL, window_ms: 60_000, ingest, points };
}

Deno.test("histories of several nodes add up by interval, the slowest percentile kept", () => {
  const t0 = 1_800_000_000_000;
  // Node b samples 1.2 s after node a; both end with a point read at the call.
  const a = history([
    point(t0, { ws: 10, deliveries_per_s: 100, p99_ms: 20, mail_depth: 4, breaker: 0 }),
    point(t0 + INTERVAL, { ws: 12, deliveries_per_s: 50, p99_ms: 30, mail_depth: 3, breaker: 0 }),
    point(t0 + INTERVAL + 900, { ws: 12, sse: 1 }),
  ]);
  const b = history([
    point(t0 + 1_200, { ws: 5, poll: 2, deliveries_per_s: 40, p99_ms: 80, mail_depth: 3 }),
    point(t0 + INTERVAL + 1_200, { ws: 6, deliveries_per_s: 0 }),
    point(t0 + INTERVAL + 1_000, { ws: 7, p50_ms: 3 }),
  ], true);
  const merged = mergeHistories({ ...a, node: "a" }, [{ node: "b", history: b }]);
  assert.deepEqual(merged.nodes, ["a", "b"]);
  assert.equal(merged.ingest, true);
  assert.equal(merged.points.length, 3);
  const [first, second, now] = merged.points;
  assert.equal(first.t, t0);
  assert.equal(first.ws, 15);
  assert.equal(first.poll, 2);
  assert.equal(first.deliveries_per_s, 140);
  assert.equal(first.p99_ms, 80, "the slowest node's p99");
  assert.equal(first.mail_depth, 4, "the shared queue, read by each node, taken once");
  assert.equal(first.breaker, 0, "the breaker of the node that runs the mailer");
  assert.equal(second.ws, 18);
  assert.equal(second.deliveries_per_s, 50);
  assert.equal(second.p99_ms, 30);
  // The points read at the call make the last point.
  assert.equal(now.t, t0 + INTERVAL + 1_000);
  assert.equal(now.ws, 19);
  assert.equal(now.sse, 1);
  assert.equal(now.p50_ms, 3);
  assert.equal(now.p99_ms, null);
});

Deno.test("a node's two readings in one interval count once, and points past the window go", () => {
  const t0 = 1_800_000_000_000;
  const a = history([point(t0 - 120_000, { ws: 99 }), point(t0, { ws: 1 }), point(t0 + 10)]);
  const b = history([point(t0 + 100, { ws: 2 }), point(t0 + 600, { ws: 3 }), point(t0 + 20)]);
  const merged = mergeHistories({ ...a, node: "a" }, [{ node: "b", history: b }]);
  assert.deepEqual(merged.points.map((p) => p.ws), [4, 0]);
});

Deno.test("what another node answers is checked before it is charted", () => {
  assert.ok(isHistory(history([point(1)])));
  assert.ok(!isHistory(null));
  assert.ok(!isHistory({ interval_ms: 0, points: [] }));
  assert.ok(!isHistory({ interval_ms: 5000, points: [{ t: "x" }] }));
  assert.ok(!isHistory({ interval_ms: 5000, points: "nope" }));
});

Deno.test({
  name: "cluster history: a node's charts sum the connections counted on every live node",
  ignore: ignoreRedis,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { nodes, close } = await startNodes(["node-a", "node-b", "node-c"], {
      ttlMs: 5_000,
      heartbeatMs: 200,
    });
    const rpcs = nodes.map((n) => createBusRpc(n.bus, { livenessMs: 100, onError: n.onError }));
    try {
      const histories = nodes.map((node, i) => {
        const metrics = createMetrics({ defaultMetrics: false });
        // Node i holds i + 1 WebSocket connections and made 10 × (i + 1) deliveries.
        metrics.connections.set({ transport: "ws" }, i + 1);
        metrics.deliveries.inc(10 * (i + 1));
        const own = createMetricsHistory({
          metrics,
          ingest: false,
          intervalMs: 60_000,
          extra: () => Promise.resolve({ mailDepth: 2, breaker: null, ingestLag: null }),
          onError: node.onError,
        });
        return clusterHistory(own, createHistoryPeers(node.bus, rpcs[i]), node.id);
      });
      for (const h of histories) await h.start();

      const answer = await histories[0].history();
      assert.deepEqual([...answer.nodes!].sort(), ["node-a", "node-b", "node-c"]);
      const now = answer.points.at(-1)!;
      assert.equal(now.ws, 1 + 2 + 3);
      assert.equal(now.mail_depth, 2);
      for (const h of histories) h.stop();

      // A node that died is no longer asked (nor waited for) once its heartbeat is old.
      await nodes[2].die();
      await new Promise((r) => setTimeout(r, 800));
      const after = await histories[1].history();
      assert.deepEqual([...after.nodes!].sort(), ["node-a", "node-b"]);
      assert.equal(after.points.at(-1)!.ws, 1 + 2);
    } finally {
      for (const rpc of rpcs) rpc.close();
      await close();
    }
  },
});
