import assert from "node:assert/strict";
import { createUserAudienceResolver } from "../../src/audience/audience.ts";
import {
  createPublisher,
  EPHEMERAL_SLICE,
  SEND_NOW_TARGETS,
} from "../../src/delivery/publisher.ts";
import { createStreamHeads } from "../../src/delivery/stream_heads.ts";
import type { AppError } from "../../src/errors.ts";
import type { Envelope } from "../../src/schemas/envelope.ts";
import { createKvStore } from "../../src/store/kv_store.ts";
import { createMemoryStore } from "../../src/store/memory_store.ts";
import { makeEnvelope, result as makeResult } from "../_support/store.ts";
import type { FanoutBatch, FanoutPlanner, SeqSource, Store } from "../../src/store/store.ts";

/**
 * The store adapters the publisher is tested on. Tests that count the job path's batches
 * run on KV only: its commit limits set their sizes.
 */
const ADAPTERS = {
  kv: async () => {
    const kv = await Deno.openKv(":memory:");
    return { store: createKvStore(kv, { recentWindowMs: 60_000 }), close: () => kv.close() };
  },
  memory: () => {
    const store = createMemoryStore({ recentWindowMs: 60_000, atomicTargets: 90 });
    return Promise.resolve({ store, close: () => store.close() });
  },
} satisfies Record<string, () => Promise<{ store: Store; close(): void }>>;

function envelope(targets: string[], type: Envelope["metadata"]["type"] = "REALTIME"): Envelope {
  const e = makeEnvelope(type);
  e.routing.audience.targets = targets;
  return e;
}

async function withPublisher(
  fn: (
    publisher: ReturnType<typeof createPublisher>,
    batches: FanoutBatch[],
    store: Store,
  ) => Promise<void>,
  options: {
    plan?: (envelope: Envelope) => FanoutPlanner | undefined;
    adapter?: keyof typeof ADAPTERS;
    /** Live heads: ephemeral items take their seqs from memory. */
    seqs?: SeqSource;
  } = {},
) {
  const { plan, adapter = "kv", seqs } = options;
  const { store, close } = await ADAPTERS[adapter]();
  const batches: FanoutBatch[] = [];
  const publisher = createPublisher({
    store,
    audience: createUserAudienceResolver({ maxAudience: 10_000 }),
    deliverLive: (batch) => batches.push(batch),
    onError: (id, error) => {
      throw new Error(`fan-out of ${id}: ${error}`);
    },
    syncFanoutLimit: 1000,
    ...(plan ? { plan } : {}),
    ...(seqs ? { seqs } : {}),
  });
  try {
    await fn(publisher, batches, store);
  } finally {
    close();
  }
}

for (const adapter of ["kv", "memory"] as const) {
  Deno.test(`publisher on the ${adapter} store replays a re-post by the same publisher and refuses one by another`, async () => {
    await withPublisher(
      async (publisher, batches) => {
        // One-commit path (two users) and job path (an audience too large for one commit).
        for (const targets of [["a", "b"], Array.from({ length: 120 }, (_, i) => `u${i}`)]) {
          const e = envelope(targets);
          const first = await publisher.publish(e, { publishedBy: "service-a" });
          const seen = batches.length;
          const again = await publisher.publish(e, { publishedBy: "service-a" });
          assert.equal(again.replayed, true);
          assert.deepEqual(again.result, first.result);
          const taken = { ...envelope(["intruder"]), metadata: e.metadata };
          await assert.rejects(
            () => publisher.publish(taken, { publishedBy: "service-b" }),
            (error: AppError) => {
              assert.equal(error.code, "conflict");
              assert.deepEqual(error.details, [
                { path: "metadata.id", message: "already used by another service" },
              ]);
              return true;
            },
          );
          assert.equal(batches.length, seen);
        }
      },
      { adapter },
    );
  });
}

for (const adapter of ["kv", "memory"] as const) {
  Deno.test(`publisher on the ${adapter} store replays an event recorded without a publisher for anyone`, async () => {
    await withPublisher(
      async (publisher) => {
        const e = envelope(["a"]);
        const first = await publisher.publish(e);
        const again = await publisher.publish(e, { publishedBy: "service-b" });
        assert.equal(again.replayed, true);
        assert.deepEqual(again.result, first.result);
      },
      { adapter },
    );
  });
}

for (const adapter of ["kv", "memory"] as const) {
  Deno.test(`publisher on the ${adapter} store writes a small audience in one commit and replays a re-post`, async () => {
    await withPublisher(
      async (publisher, batches, store) => {
        const e = envelope(["a", "b"]);
        const first = await publisher.publish(e);
        assert.equal(first.replayed, false);
        assert.equal(first.result.targeted, 2);
        assert.equal(batches.length, 1);
        assert.deepEqual(batches[0].items.map((i) => i.user), ["a", "b"]);
        assert.equal(batches[0].event.fanningOut, false);
        assert.deepEqual(await store.unfinishedFanouts(), []);

        const again = await publisher.publish(e);
        assert.equal(again.replayed, true);
        assert.deepEqual(again.result, first.result);
        assert.equal(batches.length, 1);
        assert.equal(await store.lastSeq("a"), 1);
      },
      { adapter },
    );
  });
}

for (const adapter of ["kv", "memory"] as const) {
  Deno.test(`publisher on the ${adapter} store keeps an event without its list of targets`, async () => {
    await withPublisher(
      async (publisher, batches, store) => {
        // One commit (two users), then a job (more than one commit's worth).
        const audiences = [["a", "b"], Array.from({ length: 120 }, (_, i) => `u${i}`)];
        for (const targets of audiences) {
          const e = envelope(targets, "NOTIFICATION");
          const { result } = await publisher.publish(e);
          assert.equal(result.targeted, targets.length);
          const kept = { ...e.routing.audience, targets: [] };
          assert.deepEqual(await store.getEnvelope(e.metadata.id), {
            ...e,
            routing: { ...e.routing, audience: kept },
          });
          const handed = batches.filter((b) => b.event.id === e.metadata.id);
          assert.equal(handed.reduce((n, b) => n + b.items.length, 0), targets.length);
        }
      },
      { adapter },
    );
  });
}

Deno.test("publisher stores no target's id in an event's record or body", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const publisher = createPublisher({
      store: createKvStore(kv, { recentWindowMs: 60_000 }),
      audience: createUserAudienceResolver({ maxAudience: 10_000 }),
      deliverLive: () => {},
      onError: (id, error) => {
        throw new Error(`fan-out of ${id}: ${error}`);
      },
      syncFanoutLimit: 1000,
    });
    const targets = Array.from({ length: 120 }, (_, i) => `student-${i}`);
    const e = envelope(targets, "NOTIFICATION");
    await publisher.publish(e);
    // Read back by a store that never saw the publish (no cache).
    const fresh = createKvStore(kv, { recentWindowMs: 60_000 });
    assert.deepEqual((await fresh.getEnvelope(e.metadata.id))?.routing.audience, {
      type: "USER",
      targets: [],
    });
    // The users' own keys name them; no stored value does (the job's list went with it).
    const text = (value: unknown) =>
      JSON.stringify(value, (_, v) => typeof v === "bigint" ? String(v) : v) ?? "";
    let values = 0;
    for await (const entry of kv.list({ prefix: [] })) {
      values++;
      assert.ok(!text(entry.value).includes("student-"), `${JSON.stringify(entry.key)}`);
    }
    assert.ok(values > targets.length, "the items and records were stored");
  } finally {
    kv.close();
  }
});

Deno.test("publisher keeps the job path for audiences larger than one commit", async () => {
  await withPublisher(async (publisher, batches, store) => {
    const users = Array.from({ length: 120 }, (_, i) => `u${i}`);
    const published = await publisher.publish(envelope(users));
    assert.equal(published.result.targeted, 120);
    // Batches as large as KV's checks allow (one per user without a head, one for the job).
    assert.ok(batches.length > 1, "more than one commit");
    assert.ok(batches.every((b) => b.items.length <= 98));
    assert.equal(batches.reduce((sum, b) => sum + b.items.length, 0), 120);
    assert.equal((await store.getStatus(published.result.id))?.fan_out, "done");
    for (const user of [users[0], users[119]]) assert.equal(await store.lastSeq(user), 1);
  });
});

Deno.test("publisher plans every target of a one-commit NOTIFICATION", async () => {
  const planned: string[][] = [];
  const plan = () => (users: string[]) => {
    planned.push(users);
    return Promise.resolve(users.map((u) => ({ quiet: u === "q" })));
  };
  await withPublisher(async (publisher, batches) => {
    await publisher.publish(envelope(["a", "q"], "NOTIFICATION"));
    assert.deepEqual(planned, [["a", "q"]]);
    assert.deepEqual(batches[0].items.map((i) => i.item.quiet ?? false), [false, true]);
    // 41 planned users no longer fit one commit: the job path takes them, each planned.
    const users = Array.from({ length: 41 }, (_, i) => `u${i}`);
    const published = await publisher.publish(envelope(users, "NOTIFICATION"));
    assert.deepEqual(planned.slice(1).flat().toSorted(), users.toSorted());
    assert.equal(batches.slice(1).reduce((sum, b) => sum + b.items.length, 0), 41);
    assert.equal(batches.at(-1)!.event.fanningOut, false, "the job finished");
    assert.equal(published.result.targeted, 41);
  }, { plan });
});

/** Live heads for every user, each starting after `from`: seqs taken from memory. */
function liveHeads(from = 0): SeqSource {
  const next = new Map<string, number>();
  return {
    take: (user) => {
      const seq = (next.get(user) ?? from) + 1;
      next.set(user, seq);
      return seq;
    },
    drop: () => {},
  };
}

Deno.test("an ephemeral event to a small audience goes out before its publish answers, a large one's after", async () => {
  const seqs = liveHeads();
  await withPublisher(async (publisher, batches) => {
    /** What happened, in order: each batch handed to live delivery and each answer. */
    const log: string[] = [];
    const sent = () => {
      for (const batch of batches.splice(0)) {
        log.push(`sent ${batch.event.id} to ${batch.items.length}`);
      }
    };
    const users = (n: number) => Array.from({ length: n }, (_, i) => `u${i}`);
    const small = envelope(users(SEND_NOW_TARGETS));
    const large = envelope(users(SEND_NOW_TARGETS + 1));
    await publisher.publish(small).then(() => {
      sent();
      log.push(`answered ${small.metadata.id}`);
    });
    await publisher.publish(large).then(() => {
      sent();
      log.push(`answered ${large.metadata.id}`);
    });
    await publisher.idle();
    sent();
    assert.deepEqual(log, [
      `sent ${small.metadata.id} to ${SEND_NOW_TARGETS}`,
      `answered ${small.metadata.id}`,
      `answered ${large.metadata.id}`,
      `sent ${large.metadata.id} to ${SEND_NOW_TARGETS + 1}`,
    ]);
  }, { seqs });
});

Deno.test("a large ephemeral audience is handed to live delivery in slices, each target once at its seq", async () => {
  const seqs = liveHeads(10);
  await withPublisher(async (publisher, batches) => {
    const users = Array.from({ length: 2 * EPHEMERAL_SLICE + 5 }, (_, i) => `u${i}`);
    await publisher.publish(envelope(users));
    await publisher.idle();
    assert.deepEqual(batches.map((b) => b.items.length), [EPHEMERAL_SLICE, EPHEMERAL_SLICE, 5]);
    const items = batches.flatMap((b) => b.items);
    assert.deepEqual(items.map((i) => i.user), users);
    assert.ok(items.every((i) => i.item.seq === 11 && !i.item.durable));
  }, { seqs });
});

for (const adapter of ["kv", "memory"] as const) {
  Deno.test(`publisher on the ${adapter} store sends a large durable audience's items to users online before their batches are written, once`, async () => {
    const { store, close } = await ADAPTERS[adapter]();
    const released: { user: string; seq: number }[] = [];
    const heads = createStreamHeads({
      store,
      release: (user, live) => released.push({ user, seq: live.item.seq }),
      recentWindowMs: 60_000,
      onError: (message) => {
        throw new Error(message);
      },
    });
    const targets = Array.from({ length: 1500 }, (_, i) => `u${i}`);
    const online = ["u3", "u700", "u1499"];
    for (const user of online) await heads.open(user);
    // What each delivery finds stored for its users when it is handed on.
    const deliveries: { users: string[]; storedBefore: number; held: number }[] = [];
    const pending: Promise<void>[] = [];
    // Where the job wrote the delivery records of the items sent ahead (with a version).
    const placed: { user: string; seq: number }[] = [];
    // The items the job's batches say went out before they wrote them.
    const resent: string[] = [];
    const publisher = createPublisher({
      store,
      audience: createUserAudienceResolver({ maxAudience: 10_000 }),
      deliverLive: (batch) => {
        if (!batch.ahead) resent.push(...batch.items.filter((i) => i.sent).map((i) => i.user));
        const entry = {
          users: batch.items.filter((i) => !i.sent).map((i) => i.user),
          storedBefore: 0,
          held: batch.items.filter((i) => heads.whenStored(i.user)).length,
        };
        deliveries.push(entry);
        pending.push(
          Promise.all(batch.items.map((i) => store.readStream(i.user, 0, readAll)))
            .then((reads) =>
              void (entry.storedBefore = reads.filter((r) => r.items.length).length)
            ),
        );
        // As live delivery does: an item that went out already is not sent again.
        for (const { user, item, sent } of batch.items) {
          if (sent || !heads.has(user)) continue;
          heads.settle(user, item.seq, { item, frame: `${item.seq}`, acceptedAt: item.at });
        }
      },
      onError: (id, error) => {
        throw new Error(`fan-out of ${id}: ${error}`);
      },
      syncFanoutLimit: 1000,
      seqs: heads,
      onWritten: (_, user, written) => void placed.push({ user, seq: written.seq }),
    });
    try {
      const e = envelope(targets, "NOTIFICATION");
      await publisher.publish(e);
      // Handed on before any batch of the job: the online users' items, none stored yet.
      const first = await waitFor(() => deliveries[0]);
      await Promise.all(pending);
      assert.deepEqual(first.users.toSorted(), online.toSorted());
      assert.equal(first.storedBefore, 0, "sent before their entries were written");
      assert.equal(first.held, 3, "their resumes, acks and reads wait for their entries");
      await publisher.idle();
      await Promise.all(pending);
      assert.equal(heads.whenStored("u700"), undefined);
      // Each online user got the item once, at the seq the job then wrote it at.
      assert.deepEqual(released.map((r) => r.user).toSorted(), online.toSorted());
      for (const { user, seq } of released) {
        assert.deepEqual((await store.readStream(user, 0, readAll)).items.map((i) => i.seq), [seq]);
      }
      // Their records' places are told, for their deliveries to be marked without a read.
      assert.deepEqual(
        placed.toSorted((a, b) => a.user.localeCompare(b.user)),
        adapter === "kv" ? released.toSorted((a, b) => a.user.localeCompare(b.user)) : [],
      );
      // The job's batches say which went out already (pushes are queued from them).
      assert.deepEqual(resent.toSorted(), online.toSorted());
      // The job's batches hand on the others only: 1,500 deliveries in all.
      const handed = deliveries.flatMap((d) => d.users);
      assert.equal(handed.length, 1500);
      assert.equal(new Set(handed).size, 1500);
    } finally {
      close();
    }
  });
}

const readAll = { limit: 100, windowMs: 60_000, now: Date.now() };

/** Polls `get` until it answers something, for at most two seconds. */
async function waitFor<T>(get: () => T | undefined): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const value = get();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("timed out");
}

Deno.test("after a restart, connections wait only for the fan-outs whose items may have gone out before their writes", async () => {
  const store = createMemoryStore({ recentWindowMs: 60_000, atomicTargets: 90 });
  try {
    const targets = Array.from({ length: 1500 }, (_, i) => `u${i}`);
    // What a killed process left: a job whose online targets were given seqs, and one without.
    const sent = envelope(targets, "NOTIFICATION");
    await store.reserveSeqs("u3", 10);
    await store.createEvent(sent, targets, makeResult(sent, 1500), {
      assigned: new Map([["u3", 4]]),
    });
    const plain = envelope(targets, "NOTIFICATION");
    await store.createEvent(plain, targets, makeResult(plain, 1500));
    // The plain job's run is held until released.
    let release!: () => void;
    const held = new Promise<void>((resolve) => release = resolve);
    const publisher = createPublisher({
      store: {
        ...store,
        runFanout: async (id, onBatch, options) => {
          if (id === plain.metadata.id) await held;
          return await store.runFanout(id, onBatch, options);
        },
      },
      audience: createUserAudienceResolver({ maxAudience: 10_000 }),
      deliverLive: () => {},
      onError: (id, error) => {
        throw new Error(`fan-out of ${id}: ${error}`);
      },
      syncFanoutLimit: 1000,
    });
    assert.equal(await publisher.resumeUnfinished(), 2);
    const gate = publisher.resumed();
    assert.ok(gate, "connections wait for the job that had sent items");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), 5000));
    const first = await Promise.race([gate.then(() => "open" as const), late]);
    clearTimeout(timer);
    assert.equal(first, "open", "and not for the other");
    assert.equal(publisher.resumed(), undefined);
    assert.deepEqual(await store.unfinishedFanouts(), [plain.metadata.id]);
    release();
    await publisher.idle();
    assert.deepEqual(await store.unfinishedFanouts(), []);
  } finally {
    store.close();
  }
});
