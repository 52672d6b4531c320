/** Packing a fan-out batch for the bus: what the items share travels once. */
import assert from "node:assert/strict";
import { isPackedBatch, packBatch, unpackBatch } from "../../src/cluster/packed_batch.ts";
import type { EventRecord, FanoutBatch, PendingAck, StreamItem } from "../../src/store/store.ts";

const event: EventRecord = {
  id: "evt-1",
  type: "NOTIFICATION",
  acceptedAt: 1_700_000_000_000,
  durable: true,
  ackRequired: true,
  retry: { ack_required: true, enabled: true, limit: 3, backoff: "EXPONENTIAL" },
  chunks: 1,
  result: {
    id: "evt-1",
    accepted_at: "2023-11-14T22:13:20.000Z",
    targeted: 4,
    unknown_targets: [],
  },
  fanningOut: true,
};

function item(seq: number, extra: Partial<StreamItem> = {}): StreamItem {
  return {
    seq,
    id: "evt-1",
    type: "NOTIFICATION",
    durable: true,
    ack: true,
    at: 1_700_000_000_001,
    ...extra,
  };
}

function pending(seq: number, extra: Partial<PendingAck> = {}): PendingAck {
  return { seq, id: "evt-1", attempts: 0, limit: 3, backoff: "EXPONENTIAL", ...extra };
}

/** As the bus carries it: through JSON. */
const overTheBus = (batch: FanoutBatch) => JSON.parse(JSON.stringify(packBatch(batch)));

Deno.test("a packed batch unpacks to the same items, the odd ones whole", () => {
  const batch: FanoutBatch = {
    event,
    items: [
      { user: "u-1", item: item(7), pending: pending(7) },
      { user: "constructor", item: item(3), pending: pending(3) },
      // Differs in a field of its own: travels whole.
      { user: "u-3", item: item(9, { quiet: true }), pending: pending(9) },
      { user: "__proto__", item: item(2), pending: pending(2, { attempts: 1 }) },
      { user: "u-5", item: item(4), pending: pending(4), replaces: { id: "old", seq: 1 } },
    ],
    version: "0000000000000001a000",
  };
  const packed = overTheBus(batch);
  assert(isPackedBatch(packed));
  assert.deepStrictEqual(Object.keys(packed.odd ?? {}).sort(), ["2", "3", "4"]);
  const unpacked = unpackBatch(packed, () => true);
  assert.deepStrictEqual(unpacked.event, event);
  assert.deepStrictEqual(unpacked.items, batch.items);
  assert.equal(unpacked.version, batch.version, "the commit's version travels with it");
});

Deno.test("unpacking builds only the items of the users held", () => {
  const batch: FanoutBatch = {
    event: { ...event, ackRequired: false, durable: false, type: "REALTIME" },
    items: Array.from({ length: 6 }, (_, i) => ({
      user: `u-${i}`,
      item: item(10 + i, { durable: false, ack: false, type: "REALTIME" }),
    })),
  };
  const packed = overTheBus(batch);
  assert.deepStrictEqual(packed.odd, undefined);
  const held = new Set(["u-1", "u-4"]);
  const unpacked = unpackBatch(packed, (user) => held.has(user));
  assert.deepStrictEqual(unpacked.items, [batch.items[1], batch.items[4]]);
  assert.deepStrictEqual(unpacked.items[0].pending, undefined);
});

Deno.test("a batch whose items lack a field the first has keeps them whole", () => {
  const batch: FanoutBatch = {
    event,
    items: [
      { user: "a", item: item(1, { exp: 5 }) },
      { user: "b", item: item(2) },
      { user: "c", item: item(3, { exp: 5 }), pending: pending(3) },
    ],
  };
  const unpacked = unpackBatch(overTheBus(batch), () => true);
  assert.deepStrictEqual(unpacked.items, batch.items);
});

Deno.test("malformed packed batches are refused or skipped, never thrown on", () => {
  assert(!isPackedBatch(null));
  assert(!isPackedBatch({ event, users: ["a"], seqs: [] }));
  assert(!isPackedBatch({ event, users: "a", seqs: [] }));
  const odd: unknown = { event, users: ["a", 3, "b"], seqs: [1, 2, "x"], item: item(0) };
  assert(isPackedBatch(odd));
  // A user that is not a string and a seq that is not a number are skipped.
  assert.deepStrictEqual(unpackBatch(odd, () => true).items.map((i) => i.user), ["a"]);
  assert.deepStrictEqual(unpackBatch({ event, users: ["a"], seqs: [1] }, () => true).items, []);
});

Deno.test("an empty batch packs and unpacks to nothing", () => {
  const packed = overTheBus({ event, items: [] });
  assert(isPackedBatch(packed));
  assert.deepStrictEqual(unpackBatch(packed, () => true).items, []);
});
