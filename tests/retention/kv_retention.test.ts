/** Retention on Deno KV itself: no key is left behind, and the time-keyed logs go. */

import assert from "node:assert/strict";
import * as keys from "../../src/store/keys.ts";
import type { Envelope } from "../../src/schemas/envelope.ts";
import type { Store } from "../../src/store/store.ts";
import { makeEnvelope, result, withStore } from "../_support/store.ts";

const OLD = Date.parse("2020-01-01T00:00:00Z");
const CUT = Date.parse("2021-01-01T00:00:00Z");

async function publishAt(store: Store, targets: string[], e: Envelope, at: number) {
  const accepted = { ...result(e, targets.length), accepted_at: new Date(at).toISOString() };
  await store.createEvent(e, targets, accepted);
  await store.runFanout(e.metadata.id, () => {});
}

async function kinds(kv: Deno.Kv): Promise<string[]> {
  const found = new Set<string>();
  for await (const e of kv.list({ prefix: [] })) found.add(String(e.key[0]));
  return [...found].sort();
}

Deno.test("kv retention leaves no key of a swept event behind, only the streams' last seqs", async () => {
  await withStore(async (store, kv) => {
    const collapsing = makeEnvelope("NOTIFICATION", { ack: true });
    collapsing.metadata.collapse_key = "k";
    await publishAt(store, ["a", "b", "c"], collapsing, OLD);
    const big = makeEnvelope("SYSTEM", { ack: true, payload: { text: "x".repeat(70_000) } });
    await publishAt(store, ["a"], big, OLD);
    await publishAt(store, ["b"], makeEnvelope("REALTIME"), OLD);
    await store.ack("a", collapsing.metadata.id, Date.now());
    await store.markDelivered([{ id: big.metadata.id, user: "a" }], Date.now());
    // Items of earlier versions kept an id index too.
    await kv.set(keys.byIdKey("c", collapsing.metadata.id), 1);
    assert.ok((await kinds(kv)).includes("collapse"));

    for (const kind of ["items", "events"] as const) {
      let more = true;
      let cursor: string | undefined;
      while (more) {
        const step = await store.sweep(kind, CUT, { limit: 2, ...(cursor ? { cursor } : {}) });
        ({ more, cursor } = step);
      }
    }
    // The REALTIME item itself expires with KV's own `expireIn`.
    const left = (await kinds(kv)).filter((k) => k !== "stream");
    assert.deepEqual(left, ["seq"]);
    for await (const e of kv.list<{ durable: boolean }>({ prefix: ["stream"] })) {
      assert.equal(e.value.durable, false, "only the ephemeral item waits for its expiry");
    }
  });
});

Deno.test("kv retention sweeps dead letters, mail dead letters and the audit log by time", async () => {
  await withStore(async (store, kv) => {
    for (const at of [CUT - 3, CUT - 2, CUT - 1, CUT, CUT + 1]) {
      await kv.set(keys.deadLetterKey(at, "u", at), { at });
      await kv.set(keys.mailDeadKey(at, `t${at}`), { at });
      await kv.set(keys.controlAuditKey(at, `e${at}`), { at });
    }
    const steps = [];
    let more = true;
    while (more) {
      const step = await store.sweep("dead_letters", CUT, { limit: 2 });
      steps.push(step.removed);
      more = step.more;
    }
    assert.equal(steps.reduce((a, b) => a + b, 0), 6);
    assert.ok(steps.every((n) => n <= 2));
    assert.deepEqual(await store.sweep("audit", CUT, { limit: 10 }), { removed: 3, more: false });
    const times = async (prefix: Deno.KvKey) => {
      const out: number[] = [];
      for await (const e of kv.list({ prefix })) out.push(e.key[1] as number);
      return out;
    };
    assert.deepEqual(await times(keys.deadLetterPrefix()), [CUT, CUT + 1]);
    assert.deepEqual(await times(keys.mailDeadPrefix()), [CUT, CUT + 1]);
    assert.deepEqual(await times(keys.controlAuditPrefix()), [CUT, CUT + 1]);
  });
});
