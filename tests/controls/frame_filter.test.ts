import assert from "node:assert/strict";
import { featureOfFrame, filterFrame } from "../../src/controls/frame_filter.ts";
import { encodeBatchFrame, encodeEventFrame, encodeFrame } from "../../src/schemas/frames.ts";

function envelopeJson(type: string, payload: unknown = {}) {
  return JSON.stringify({
    metadata: {
      id: crypto.randomUUID(),
      priority: "NORMAL",
      type,
      emitter: "e",
      source: "s",
      topic: "t",
    },
    payload,
  });
}

Deno.test("an event frame belongs to the feature of its envelope type", () => {
  assert.equal(featureOfFrame(encodeEventFrame(1, envelopeJson("NOTIFICATION"))), "notifications");
  assert.equal(featureOfFrame(encodeEventFrame(2, envelopeJson("SYSTEM"))), "notifications");
  assert.equal(featureOfFrame(encodeEventFrame(3, envelopeJson("MESSAGE"))), "messaging");
  assert.equal(featureOfFrame(encodeEventFrame(4, envelopeJson("REALTIME"))), "realtime");
  assert.equal(featureOfFrame(encodeFrame({ type: "pong" })), undefined);
  assert.equal(
    featureOfFrame(encodeFrame({ type: "typing", conversation: "c", user: "u" })),
    "messaging",
  );
});

Deno.test("a payload cannot pass for another item type", () => {
  const sneaky = envelopeJson("NOTIFICATION", { type: "REALTIME", x: '"type":"REALTIME"' });
  assert.equal(featureOfFrame(encodeEventFrame(1, sneaky)), "notifications");
});

Deno.test("filterFrame drops frames of switched-off features and keeps the rest", () => {
  const off = new Set(["notifications" as const]);
  const note = encodeEventFrame(1, envelopeJson("NOTIFICATION"));
  const live = encodeEventFrame(2, envelopeJson("REALTIME"));
  assert.equal(filterFrame(note, off), undefined);
  assert.equal(filterFrame(live, off), live);
  assert.equal(filterFrame(note, new Set()), note);
  const pong = encodeFrame({ type: "pong" });
  assert.equal(filterFrame(pong, off), pong);
});

Deno.test("filterFrame keeps only the allowed items of a batch", () => {
  const off = new Set(["notifications" as const]);
  const batch = encodeBatchFrame([
    encodeEventFrame(1, envelopeJson("NOTIFICATION")),
    encodeEventFrame(2, envelopeJson("REALTIME")),
  ]);
  const kept = JSON.parse(filterFrame(batch, off)!);
  assert.deepEqual(kept.items.map((i: { seq: number }) => i.seq), [2]);
  const onlyNotes = encodeBatchFrame([encodeEventFrame(1, envelopeJson("NOTIFICATION"))]);
  assert.equal(filterFrame(onlyNotes, off), undefined);
});
