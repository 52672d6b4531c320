/**
 * One owner per actor across nodes sharing one Redis: racing nodes agree on one owner,
 * a lease in use outlives its ttl, an unused one is let go, and the lease of a node that
 * died (or of an earlier run under the same node id) is taken over once it lapses.
 */

import assert from "node:assert/strict";
import { createOwnership, type Ownership } from "../../src/cluster/ownership.ts";
import { ignoreRedis } from "../_support/redis_kv.ts";
import { startNodes, type TestNode } from "./_nodes.ts";

function test(name: string, fn: () => Promise<void>) {
  Deno.test({
    name: `ownership: ${name}`,
    ignore: ignoreRedis,
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });
}

/** A clock the test moves by hand. */
function clock(start = Date.now()) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

function ownershipOf(
  node: TestNode,
  options: { ttlMs: number; renewMs?: number; idleMs?: number; now?: () => number },
): Ownership {
  return createOwnership({
    leases: node.leases,
    bus: node.bus,
    kind: "conversation",
    onError: node.onError,
    ...options,
  });
}

test("nodes racing for the same conversations agree on exactly one owner each", async () => {
  const { nodes, close } = await startNodes(["node-a", "node-b", "node-c"], { ttlMs: 10_000 });
  const owners = nodes.map((n) => ownershipOf(n, { ttlMs: 10_000 }));
  try {
    const ids = Array.from({ length: 20 }, (_, i) => `c${i}`);
    for (const id of ids) {
      const answers = await Promise.all(owners.map((o) => o.owner(id)));
      const winners = nodes.filter((_, i) => answers[i].local);
      assert.equal(winners.length, 1, `one owner of "${id}"`);
      const winner = winners[0].id;
      for (const answer of answers) {
        assert.deepEqual(answer, answer.local ? { local: true } : { local: false, node: winner });
      }
      assert.equal((await nodes[0].leases.holder("conversation", id))?.node, winner);
      assert.ok(owners[nodes.indexOf(winners[0])].fenceOf(id));
    }
    // Asking again changes nothing.
    const again = await Promise.all(owners.map((o) => o.owner("c0")));
    assert.equal(again.filter((a) => a.local).length, 1);
    // Closing releases everything at once: the others take over without waiting.
    const first = owners.findIndex((o) => o.held().includes("c0"));
    await owners[first].close();
    const other = owners[(first + 1) % owners.length];
    other.forget("c0");
    assert.deepEqual(await other.owner("c0"), { local: true });
  } finally {
    for (const o of owners) await o.close();
    await close();
  }
});

test("a lease in use is renewed past its ttl; one unused for idleMs is let go", async () => {
  const ttlMs = 10_000;
  const time = clock();
  const { nodes, close } = await startNodes(["node-a", "node-b"], { ttlMs, now: time.now });
  // A timer that never fires during the test: the passes are run by hand.
  const options = { ttlMs, renewMs: 9_000, idleMs: 30_000, now: time.now };
  const [a, b] = nodes.map((n) => ownershipOf(n, options));
  try {
    assert.deepEqual(await a.owner("c1"), { local: true });
    const first = a.fenceOf("c1")!;
    for (let i = 0; i < 3; i++) {
      time.advance(6_000);
      a.touch("c1");
      await a.renewNow();
    }
    // 18 s after it was taken, twice its ttl, the lease is still a's, with the same token.
    b.forget("c1");
    assert.deepEqual(await b.owner("c1"), { local: false, node: "node-a" });
    assert.equal(a.fenceOf("c1")?.token, first.token);
    assert.ok(a.fenceOf("c1")!.expiresAt > time.now());

    // Unused for idleMs: the next pass lets it go, and b takes it at once.
    time.advance(30_000);
    await a.renewNow();
    assert.deepEqual(a.held(), []);
    b.forget("c1");
    assert.deepEqual(await b.owner("c1"), { local: true });
    assert.ok(b.fenceOf("c1")!.token > first.token);
    assert.deepEqual(await a.owner("c1"), { local: false, node: "node-b" });
  } finally {
    await a.close();
    await b.close();
    await close();
  }
});

test("the lease of a node that died is taken over by another node once it lapses", async () => {
  const ttlMs = 1_000;
  const { nodes, close } = await startNodes(["node-a", "node-b"], { ttlMs });
  const [a, b] = nodes.map((n) => ownershipOf(n, { ttlMs, renewMs: 300 }));
  try {
    assert.deepEqual(await a.owner("c1"), { local: true });
    const dead = a.fenceOf("c1")!;
    assert.deepEqual(await b.owner("c1"), { local: false, node: "node-a" });

    // node-a dies: no release, no more renewals, no more heartbeats.
    await nodes[0].die();
    b.forget("c1");
    assert.deepEqual(await b.owner("c1"), { local: true });
    const taken = b.fenceOf("c1")!;
    assert.ok(taken.token > dead.token);
    assert.ok(Date.now() >= dead.expiresAt, "taken only once the dead node's lease lapsed");
    assert.equal((await nodes[1].leases.holder("conversation", "c1"))?.node, "node-b");
  } finally {
    await a.close();
    await b.close();
    await close();
  }
});

test("a lease an earlier run of this node left behind is taken back once it lapses", async () => {
  const ttlMs = 1_000;
  const { nodes, add, close } = await startNodes(["node-a"], { ttlMs });
  const before = ownershipOf(nodes[0], { ttlMs, renewMs: 300 });
  let after: Ownership | undefined;
  try {
    assert.deepEqual(await before.owner("c1"), { local: true });
    const old = before.fenceOf("c1")!;
    await nodes[0].die();
    // The same node id, started again: the lease says "node-a", but not this run's.
    const again = await add("node-a");
    after = ownershipOf(again, { ttlMs, renewMs: 300 });
    assert.deepEqual(await after.owner("c1"), { local: true });
    assert.ok(after.fenceOf("c1")!.token > old.token);
    assert.ok(Date.now() >= old.expiresAt, "taken only once the earlier run's lease lapsed");
  } finally {
    await before.close();
    await after?.close();
    await close();
  }
});
