/** Stream heads: seqs from reserved ranges, in-order release, the recent window. */

import assert from "node:assert/strict";
import type { LiveItem } from "../../actors/user.machine.ts";
import {
  createStreamHeads,
  ORDER_MIN,
  type StreamHeadsDeps,
} from "../../src/delivery/stream_heads.ts";
import { encodeEventFrame } from "../../src/schemas/frames.ts";
import { createMemoryStore } from "../../src/store/memory_store.ts";
import type { StreamItem } from "../../src/store/store.ts";
import { makeEnvelope, result } from "../_support/store.ts";

const WINDOW_MS = 60_000;

/** Heads over an in-memory store, recording what they pass on and the errors they report. */
function setup(options: Partial<StreamHeadsDeps> = {}) {
  const store = createMemoryStore({ recentWindowMs: WINDOW_MS });
  const released: { user: string; seq: number }[] = [];
  const errors: string[] = [];
  const heads = createStreamHeads({
    store,
    release: (user, live) => released.push({ user, seq: live.item.seq }),
    recentWindowMs: WINDOW_MS,
    onError: (message) => errors.push(message),
    ...options,
  });
  return { store, heads, released, errors };
}

/** A live item at `seq` (ephemeral unless `durable`), as the publisher builds it. */
function live(seq: number, options: { durable?: boolean; at?: number } = {}): LiveItem {
  const item: StreamItem = {
    seq,
    id: `e${seq}`,
    type: options.durable ? "NOTIFICATION" : "REALTIME",
    durable: options.durable ?? false,
    ack: false,
    at: options.at ?? Date.now(),
  };
  const json = JSON.stringify({ id: item.id });
  return {
    item,
    frame: encodeEventFrame(seq, json),
    ...(item.durable ? {} : { json }),
    acceptedAt: item.at,
  };
}

Deno.test("a head reserves a range above every stored seq and starts an epoch", async () => {
  const { store, heads } = setup({ leaseSize: 10 });
  const e = makeEnvelope();
  await store.publishAtomic(e, ["camille"], result(e, 1));
  const first = await heads.open("camille");
  assert.equal(first.start, 2);
  assert.equal(first.released, 1);
  assert.equal(await store.lastSeq("camille"), 11, "the range is reserved in the store");
  assert.equal(heads.take("camille"), 2);
  assert.equal(heads.take("camille"), 3);
  assert.equal(heads.epochOf("camille"), first.epoch);

  heads.close("camille");
  assert.equal(heads.take("camille"), undefined, "no head, no seq from memory");
  const second = await heads.open("camille");
  assert.equal(second.start, 12, "a new head never reuses the previous range");
  assert.notEqual(second.epoch, first.epoch);
});

Deno.test("a large audience is visited in the order the heads opened, the rest after", async () => {
  const { heads } = setup({ leaseSize: 10 });
  // Heads open in an order of their own; some names are hostile.
  const count = 4 * ORDER_MIN + 4;
  const opened = Array.from({ length: count }, (_, i) => `u${(i * 7) % count}`);
  opened[3] = "constructor";
  opened[5] = "__proto__";
  for (const user of opened) await heads.open(user);
  const offline = ["zoe", "adam"];
  // The audience in another order (reversed), with users who have no head and a repeat.
  const audience = [...opened].reverse();
  audience.splice(10, 0, offline[0]);
  audience.push(offline[1], opened[0]);
  assert.deepEqual(heads.order(audience), [...opened, ...offline], "heads first, each once");

  // Not worth a pass over every head: a small audience, or a small part of the heads.
  const small = ["u3", "u1", "nobody"];
  assert.equal(heads.order(small), small);
  const part = opened.slice(0, ORDER_MIN).reverse();
  assert.equal(heads.order(part), part);
});

Deno.test("concurrent opens of one user build one head", async () => {
  const { heads } = setup();
  const [a, b] = await Promise.all([heads.open("yanis"), heads.open("yanis")]);
  assert.equal(a.epoch, b.epoch);
  assert.equal(heads.size(), 1);
});

Deno.test("items pass on in seq order: a later one waits for the write before it", async () => {
  const { heads, released } = setup();
  await heads.open("camille");
  const durable = heads.take("camille") as number;
  const ephemeral = heads.take("camille") as number;
  const dropped = heads.take("camille") as number;
  const last = heads.take("camille") as number;
  heads.settle("camille", ephemeral, live(ephemeral));
  heads.settle("camille", last, live(last));
  heads.drop("camille", dropped);
  assert.equal(released.length, 0, "everything waits for the durable write");
  assert.equal(heads.position("camille")?.released, durable - 1);
  heads.settle("camille", durable, live(durable, { durable: true }));
  assert.deepEqual(released.map((r) => r.seq), [durable, ephemeral, last]);
  assert.equal(heads.position("camille")?.released, last);
});

Deno.test("the window keeps ephemeral items for a resume, and says when it lost some", async () => {
  let clock = 1_000_000;
  const { heads } = setup({ recentItems: 3, now: () => clock });
  const { start } = await heads.open("camille");
  const seqs = Array.from({ length: 5 }, () => heads.take("camille") as number);
  seqs.forEach((seq, i) =>
    heads.settle("camille", seq, live(seq, { durable: i === 1, at: clock + i }))
  );
  // Seqs start..start+4: the durable one (start+1) is not the window's; 3 ephemeral kept.
  const all = heads.recent("camille", start - 1)!;
  assert.equal(all.complete, false, "the first ephemeral item left the window");
  assert.deepEqual(all.items.map((r) => r.item.seq), [start + 2, start + 3, start + 4]);
  assert.equal(all.items[0].frame!(), live(start + 2).frame, "the frame is encoded again");
  const tail = heads.recent("camille", start + 1)!;
  assert.equal(tail.complete, true);
  assert.equal(tail.items.length, 3);
  clock += WINDOW_MS + 10;
  const late = heads.recent("camille", start + 1)!;
  assert.deepEqual(late.items, []);
  assert.equal(late.complete, false, "the window moved on");
  assert.equal(heads.recent("camille", start + 4)!.complete, true, "nothing after the last");
});

Deno.test("a head past its range waits for the next reservation before a seq is used", async () => {
  const { store, heads } = setup({ leaseSize: 4 });
  await heads.open("camille");
  const taken = Array.from({ length: 10 }, () => heads.take("camille")!);
  const seqs = await Promise.all(taken);
  assert.deepEqual(seqs, Array.from({ length: 10 }, (_, i) => i + 1));
  assert.ok(taken.some((t) => typeof t !== "number"), "some seqs waited for a range");
  assert.ok(await store.lastSeq("camille") >= 10, "every seq handed out is reserved");
});

Deno.test("a head whose range was overtaken closes, and later items go straight on", async () => {
  const { store, heads, released, errors } = setup({ leaseSize: 2 });
  await heads.open("camille");
  const e = makeEnvelope();
  // A writer that ignores the head allocates above its range.
  await store.publishAtomic(e, ["camille"], result(e, 1));
  const first = heads.take("camille") as number;
  const beyond = heads.take("camille");
  const third = heads.take("camille");
  await assert.rejects(Promise.resolve(third), /closed/);
  assert.equal(typeof beyond, "number");
  assert.equal(heads.has("camille"), false);
  assert.match(errors.join("\n"), /lost its range/);
  heads.settle("camille", first, live(first));
  assert.deepEqual(released.map((r) => r.seq), [first]);
});

Deno.test("an item stuck behind a seq that never settles goes on after the stall delay", async () => {
  const passed: number[] = [];
  const done = Promise.withResolvers<void>();
  const { heads, errors } = setup({
    stallMs: 20,
    release: (_, l) => {
      passed.push(l.item.seq);
      done.resolve();
    },
  });
  await heads.open("camille");
  const lost = heads.take("camille") as number;
  const next = heads.take("camille") as number;
  heads.settle("camille", next, live(next));
  assert.deepEqual(passed, [], "it waits for the seq before it");
  await done.promise;
  assert.deepEqual(passed, [next]);
  assert.match(errors.join("\n"), /skipped stalled seqs/);
  // The stalled write that finally lands still goes out (its client has it in the store).
  heads.settle("camille", lost, live(lost));
  assert.deepEqual(passed, [next, lost]);
  // A client that got `next` and was away when `lost` went out cannot count on its resume;
  // one from before `lost` reads it from the store, and one past what went out since can.
  assert.equal(heads.recent("camille", next)!.complete, false);
  assert.equal(heads.recent("camille", lost)!.complete, false);
  assert.equal(heads.recent("camille", lost - 1)!.complete, true);
  const later = heads.take("camille") as number;
  heads.settle("camille", later, live(later));
  assert.equal(heads.recent("camille", later)!.complete, true);
});

Deno.test("a take while the head is opening waits for its range", async () => {
  const { heads } = setup({ leaseSize: 10 });
  const opening = heads.open("camille");
  const taken = heads.take("camille");
  assert.ok(taken instanceof Promise, "the range is not reserved yet");
  const { start } = await opening;
  assert.equal(await taken, start);
  assert.equal(heads.take("camille"), start + 1);
});

Deno.test("a durable item passed on before it is stored is replayed from its head until it is", async () => {
  const { heads } = setup({ leaseSize: 10 });
  const head = await heads.open("camille");
  const seq = heads.take("camille") as number;
  const item = live(seq, { durable: true }).item;
  heads.hold("camille", item, JSON.stringify({ id: item.id }));
  heads.settle("camille", seq, live(seq, { durable: true }));
  const read = heads.recent("camille", head.released - 1)!;
  assert.deepEqual(read.items.map((r) => r.item.seq), [seq]);
  assert.equal(read.items[0].frame!(), encodeEventFrame(seq, JSON.stringify({ id: item.id })));
  assert.equal(read.complete, true);
  // Acks and reads wait for it; a resume in this head's epoch need not.
  assert.ok(heads.whenStored("camille"));
  assert.equal(heads.whenStored("camille", head.start), undefined);
  assert.ok(heads.whenStored("camille", seq + 1), "a later head's resume waits for it");
  const written = heads.whenStored("camille")!;
  assert.equal(heads.stored("camille", seq), true);
  await written;
  assert.equal(heads.stored("camille", seq), false, "once");
  assert.deepEqual(
    heads.recent("camille", head.released - 1)!.items,
    [],
    "read from the store now",
  );
});

Deno.test("a held item that will not be stored makes a resume from below it incomplete", async () => {
  const { heads } = setup({ leaseSize: 10 });
  await heads.open("camille");
  const seq = heads.take("camille") as number;
  const item = live(seq, { durable: true }).item;
  heads.hold("camille", item, "{}");
  heads.settle("camille", seq, live(seq, { durable: true }));
  heads.lost("camille", seq);
  assert.equal(heads.whenStored("camille"), undefined);
  assert.equal(heads.recent("camille", seq - 1)!.complete, false);
  assert.equal(heads.recent("camille", seq)!.complete, true, "a client past it had it");
});

/** A durable live item at `seq` carrying its event's shared JSON, as live delivery builds it. */
function durable(seq: number, extra: Partial<LiveItem> = {}): LiveItem {
  const base = live(seq, { durable: true });
  return { ...base, json: JSON.stringify({ id: base.item.id }), ...extra };
}

Deno.test("the window keeps durable items too: a resume after the head's start needs no store read", async () => {
  const { heads } = setup({ leaseSize: 10 });
  const head = await heads.open("camille");
  const [a, b, c] = [0, 1, 2].map(() => heads.take("camille") as number);
  heads.settle("camille", a, durable(a));
  heads.settle("camille", b, live(b));
  // A conversation message: rendered for its reader at the replay, no frame kept.
  const message = durable(c);
  const { json: _, ...rendered } = message;
  heads.settle("camille", c, {
    ...rendered,
    item: { ...message.item, type: "MESSAGE", msg: { c: "k1", s: 1, op: "new" } },
  });
  const all = heads.recent("camille", head.start - 1)!;
  assert.deepEqual(all.items.map((r) => r.item.seq), [a, b, c]);
  assert.equal(all.covered, true);
  assert.equal(all.items[0].frame!(), encodeEventFrame(a, JSON.stringify({ id: `e${a}` })));
  assert.equal(all.items[2].frame, undefined, "a message is rendered at the replay");
  assert.equal(heads.recent("camille", b)!.covered, true);
  // A position before the head's start reads the store.
  assert.equal(heads.recent("camille", head.start - 2)!.covered, false);
});

Deno.test("an item replaced under its collapse key leaves the window's replays; late or unkept items end the cover below them", async () => {
  const { heads } = setup({ leaseSize: 10, stallMs: 20 });
  const head = await heads.open("camille");
  const [a, b, c, d] = [0, 1, 2, 3].map(() => heads.take("camille") as number);
  heads.settle("camille", a, durable(a));
  heads.settle("camille", b, durable(b, { replaces: { id: `e${a}`, seq: a } }));
  assert.deepEqual(heads.recent("camille", head.start - 1)!.items.map((r) => r.item.seq), [b]);
  // A durable item without its envelope's JSON is not kept: the store has it.
  heads.settle("camille", c, live(c, { durable: true }));
  assert.equal(heads.recent("camille", b)!.covered, false);
  assert.equal(heads.recent("camille", c)!.covered, true);
  // d waits for a seq that never settles, is passed on past it, and that one comes late.
  const e = heads.take("camille") as number;
  heads.settle("camille", e, durable(e));
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(heads.position("camille")!.released, e);
  heads.settle("camille", d, durable(d));
  assert.equal(heads.recent("camille", c)!.covered, false, "d went out late");
  const f = heads.take("camille") as number;
  heads.settle("camille", f, durable(f));
  assert.equal(heads.recent("camille", e)!.covered, false, "a client at e may have missed d");
  assert.equal(heads.recent("camille", f)!.covered, true);
});

Deno.test("a durable item leaving the window ends the cover but not the resume's completeness", async () => {
  const { heads } = setup({ leaseSize: 10, recentItems: 2 });
  const head = await heads.open("camille");
  const [a, b, c] = [0, 1, 2].map(() => heads.take("camille") as number);
  heads.settle("camille", a, durable(a));
  heads.settle("camille", b, live(b));
  heads.settle("camille", c, durable(c));
  const read = heads.recent("camille", head.start - 1)!;
  assert.deepEqual(read.items.map((r) => r.item.seq), [b, c]);
  assert.equal(read.complete, true, "every ephemeral item is there; the store has a");
  assert.equal(read.covered, false);
  assert.equal(heads.recent("camille", a)!.covered, true);
});
