/** Batched reads: concurrent reads of a few ids share one store read. */

import assert from "node:assert/strict";
import { createBatchedReads } from "../../src/directory/batched_reads.ts";

/** A store of `id → value` that records every read it is asked for. */
function countingStore(values: Map<string, string>) {
  const loads: string[][] = [];
  const load = (ids: string[]) => {
    loads.push([...ids]);
    return Promise.resolve(ids.map((id) => values.get(id)));
  };
  return { loads, load };
}

Deno.test("batched reads: concurrent reads in the same turn share one read, an id asked twice read once", async () => {
  const { loads, load } = countingStore(new Map([["marie", "M"], ["paul", "P"], ["lea", "L"]]));
  const read = createBatchedReads(load);
  const answers = await Promise.all([
    read(["marie"]),
    read(["paul", "nobody"]),
    read(["marie"]),
    read(["lea", "paul"]),
  ]);
  assert.deepEqual(answers, [["M"], ["P", undefined], ["M"], ["L", "P"]]);
  assert.deepEqual(loads, [["marie", "paul", "nobody", "lea"]]);
});

Deno.test("batched reads: a full batch goes at once, the rest in the next one", async () => {
  const { loads, load } = countingStore(new Map());
  const read = createBatchedReads(load, { maxBatch: 3 });
  const ids = ["a", "b", "c", "d", "e"];
  await Promise.all(ids.map((id) => read([id])));
  assert.deepEqual(loads, [["a", "b", "c"], ["d", "e"]]);
  // A request that is a batch on its own goes as it is.
  loads.length = 0;
  await read(["f", "g", "h", "i"]);
  assert.deepEqual(loads, [["f", "g", "h", "i"]]);
});

Deno.test("batched reads: a read asked once a batch is on its way does not join it", async () => {
  const values = new Map([["marie", "before"]]);
  const started: string[][] = [];
  const releases: (() => void)[] = [];
  let onLoad = () => {};
  const read = createBatchedReads((ids: string[]) => {
    started.push([...ids]);
    const snapshot = ids.map((id) => values.get(id));
    onLoad();
    return new Promise<(string | undefined)[]>((resolve) => releases.push(() => resolve(snapshot)));
  });
  const loaded = () => new Promise<void>((resolve) => onLoad = resolve);
  let sent = loaded();
  const first = read(["marie"]);
  await sent;
  // The write lands while the first read is in flight; a read asked after it reads again.
  values.set("marie", "after");
  sent = loaded();
  const second = read(["marie"]);
  await sent;
  releases.forEach((release) => release());
  assert.deepEqual(await first, ["before"]);
  assert.deepEqual(await second, ["after"]);
  assert.deepEqual(started, [["marie"], ["marie"]]);
});

Deno.test("batched reads: a failed read fails every caller that shared it", async () => {
  let calls = 0;
  const read = createBatchedReads<string>(() => {
    calls++;
    return Promise.reject(new Error("Store unavailable"));
  });
  const results = await Promise.allSettled([read(["marie"]), read(["paul"]), read(["marie"])]);
  assert.equal(calls, 1);
  for (const result of results) {
    assert.equal(result.status, "rejected");
    assert.equal((result as PromiseRejectedResult).reason.message, "Store unavailable");
  }
  // A loader that throws before answering fails its callers the same way.
  const throwing = createBatchedReads<string>(() => {
    throw new Error("Bad read");
  });
  await assert.rejects(throwing(["marie"]), /Bad read/);
});

Deno.test("batched reads: hostile ids are ids like any other", async () => {
  const hostile = ["__proto__", "constructor", "toString", "hasOwnProperty"];
  const { loads, load } = countingStore(new Map(hostile.map((id) => [id, `value of ${id}`])));
  const read = createBatchedReads(load);
  const answers = await Promise.all([
    read(["__proto__", "constructor"]),
    read(["toString"]),
    read(["__proto__", "hasOwnProperty", "valueOf"]),
  ]);
  assert.deepEqual(answers, [
    ["value of __proto__", "value of constructor"],
    ["value of toString"],
    ["value of __proto__", "value of hasOwnProperty", undefined],
  ]);
  assert.deepEqual(loads, [[
    "__proto__",
    "constructor",
    "toString",
    "hasOwnProperty",
    "valueOf",
  ]]);
});
