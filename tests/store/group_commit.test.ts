/**
 * The group commit: writes arriving while a commit is under way share the next one; a
 * write that finds none under way waits a moment for company; two commits may be under
 * way at once, never two sharing a user or an id.
 */

import assert from "node:assert/strict";
import { createGroupCommit, type GroupedWrite } from "../../src/store/kv/_commit.ts";
import { countingKv } from "../_support/counting_kv.ts";

/** A write of one key under `user`, answering the key it wrote. */
function write(id: string, user: string): GroupedWrite<string> {
  return {
    id,
    users: [user],
    cost: { checks: 0, mutations: 1, keyBytes: 64, bytes: 128 },
    build: (op) => {
      op.set(["w", id], user);
      return id;
    },
  };
}

Deno.test("group commit: a second commit runs while the first is written, over other users", async () => {
  const kv = await Deno.openKv(":memory:");
  // The first commit waits until the test lets it go: what else starts meanwhile shows.
  const { promise: release, resolve: letGo } = Promise.withResolvers<void>();
  const { promise: firstStarted, resolve: startFirst } = Promise.withResolvers<void>();
  const started: number[] = [];
  const counting = countingKv(kv, async (n) => {
    started.push(n);
    if (n === 0) {
      startFirst();
      await release;
    }
  });
  try {
    const commit = createGroupCommit<string>(counting.kv);
    const first = commit(write("a", "camille"));
    // Alone, it waits a moment for company, then commits: held from here.
    await firstStarted;
    // Arrive while the first commit is held: one goes now (another user), one must wait
    // (the same user as the commit under way).
    const other = commit(write("b", "yanis"));
    const same = commit(write("c", "camille"));
    // Deadline, not synchronisation: a commit that waited for the held one would never come.
    let deadline: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      deadline = setTimeout(() => reject(new Error("the second commit waited")), 5000);
    });
    assert.equal(await Promise.race([other, timedOut]).finally(() => clearTimeout(deadline)), "b");
    assert.deepEqual(started, [0, 1], "the second commit ran while the first was held");
    letGo();
    assert.deepEqual(await Promise.all([first, same]), ["a", "c"]);
    assert.deepEqual(started, [0, 1, 2], "the same user's write waited for the first commit");
    for (const [id, user] of [["a", "camille"], ["b", "yanis"], ["c", "camille"]]) {
      assert.equal((await kv.get(["w", id])).value, user);
    }
    assert.equal(counting.counts.failed, 0);
  } finally {
    letGo();
    kv.close();
  }
});

Deno.test("group commit: writes arriving while commits are under way share the next one", async () => {
  const kv = await Deno.openKv(":memory:");
  const { promise: release, resolve: letGo } = Promise.withResolvers<void>();
  const { promise: firstStarted, resolve: startFirst } = Promise.withResolvers<void>();
  const counting = countingKv(kv, async (n) => {
    if (n === 0) startFirst();
    if (n < 2) await release;
  });
  try {
    const commit = createGroupCommit<string>(counting.kv);
    const held = [commit(write("a", "u1"))];
    await firstStarted;
    // A commit is under way: the next write takes the second one at once.
    held.push(commit(write("b", "u2")));
    assert.equal(counting.counts.commits, 2);
    const later = Array.from({ length: 20 }, (_, i) => commit(write(`w${i}`, `v${i}`)));
    letGo();
    await Promise.all([...held, ...later]);
    // Two held commits (one write each), then the twenty in one.
    assert.equal(counting.counts.commits, 3);
  } finally {
    kv.close();
  }
});

Deno.test("group commit: writes that find none under way wait a moment and share one commit", async () => {
  const kv = await Deno.openKv(":memory:");
  const counting = countingKv(kv);
  try {
    const commit = createGroupCommit<string>(counting.kv);
    const first = commit(write("a", "u1"));
    assert.equal(counting.counts.commits, 0, "a lone write waits for company");
    const rest = [commit(write("b", "u2")), commit(write("c", "u3"))];
    assert.deepEqual(await Promise.all([first, ...rest]), ["a", "b", "c"]);
    assert.equal(counting.counts.commits, 1);
    // A full group does not wait.
    const full = Array.from({ length: 64 }, (_, i) => commit(write(`f${i}`, `v${i}`)));
    assert.equal(counting.counts.commits, 2, "the 64th write sent the group at once");
    assert.equal((await Promise.all(full)).length, 64);
    assert.equal(counting.counts.failed, 0);
  } finally {
    kv.close();
  }
});
