/** The directory entry cache: fresh entries from memory, writes forget them at once. */

import assert from "node:assert/strict";
import { createKvDirectory } from "../../src/directory/kv_directory.ts";
import type { DirectoryEntry } from "../../src/directory/directory.ts";
import { withEntryCache } from "../../src/directory/entry_cache.ts";
import { readCacheTtlMs } from "../../src/read_cache.ts";
import { studentEntry } from "../_support/directory.ts";
import type { Directory } from "../../src/directory/directory.ts";

const entry = studentEntry;

/** A KV directory counting the ids it reads, with a cache over it on a settable clock. */
async function setup(options: { maxEntries?: number; ttlMs?: number } = {}) {
  const kv = await Deno.openKv(":memory:");
  const inner = createKvDirectory(kv);
  const read: string[] = [];
  const counted: Directory = {
    ...inner,
    get: (id) => {
      read.push(id);
      return inner.get(id);
    },
    getMany: (ids) => {
      read.push(...ids);
      return inner.getMany(ids);
    },
  };
  const clock = { now: 0 };
  const cached = withEntryCache(counted, { ttlMs: 1000, now: () => clock.now, ...options });
  return { kv, inner, cached, read, clock };
}

Deno.test("entry cache: entries and absences are trusted for the TTL, then read again", async () => {
  const { kv, inner, cached, read, clock } = await setup();
  try {
    await inner.put(entry("marie"));
    assert.equal((await cached.get("marie"))?.id, "marie");
    assert.equal(await cached.get("nobody"), undefined);
    assert.deepEqual(
      (await cached.getMany(["marie", "nobody", "paul"])).map((e) => e?.id),
      ["marie", undefined, undefined],
    );
    assert.deepEqual(read, ["marie", "nobody", "paul"], "only paul was read again");
    clock.now = 1001;
    await cached.getMany(["marie", "nobody"]);
    assert.deepEqual(read.slice(3), ["marie", "nobody"]);
  } finally {
    kv.close();
  }
});

Deno.test("entry cache: a lone process trusts a read for 5 min, a cluster node for 1 min", async () => {
  for (const shared of [false, true]) {
    const { kv, inner, cached, read, clock } = await setup({ ttlMs: readCacheTtlMs(shared) });
    try {
      await inner.put(entry("marie"));
      await cached.getMany(["marie"]);
      clock.now = 60_001;
      await cached.getMany(["marie"]);
      assert.deepEqual(read, shared ? ["marie", "marie"] : ["marie"], `shared: ${shared}`);
      clock.now = 300_001;
      await cached.getMany(["marie"]);
      assert.equal(read.length, shared ? 3 : 2, "read again once trusted no more");
    } finally {
      kv.close();
    }
  }
});

Deno.test("entry cache: forgetting entries written elsewhere drops them and the reads in flight", async () => {
  const { kv, inner, cached, read } = await setup();
  try {
    await inner.put(entry("marie"));
    await inner.put(entry("paul"));
    await cached.getMany(["marie", "paul"]);
    await inner.put(entry("marie", ["univ-rennes"]));
    // A read in flight when the news comes is answered but not kept.
    const inFlight = cached.get("nobody");
    cached.forget(["marie", "nobody"]);
    assert.equal(await inFlight, undefined);
    assert.deepEqual((await cached.get("marie"))?.structures, ["univ-rennes"]);
    assert.equal((await cached.get("paul"))?.id, "paul");
    await cached.get("nobody");
    assert.deepEqual(read, ["marie", "paul", "nobody", "marie", "nobody"]);
  } finally {
    kv.close();
  }
});

Deno.test("entry cache: a write through it forgets the entry at once", async () => {
  const { kv, cached } = await setup();
  try {
    await cached.put(entry("marie"));
    assert.deepEqual((await cached.get("marie"))?.structures, ["univ-lyon"]);
    await cached.put(entry("marie", ["univ-rennes"]));
    assert.deepEqual((await cached.get("marie"))?.structures, ["univ-rennes"]);
    await cached.update("marie", (e) => e && { ...e, structures: ["univ-nantes"] });
    assert.deepEqual((await cached.getMany(["marie"]))[0]?.structures, ["univ-nantes"]);
    assert.equal(await cached.delete("marie"), true);
    assert.equal(await cached.get("marie"), undefined);
  } finally {
    kv.close();
  }
});

Deno.test("entry cache: a read overtaken by a write does not cache what it read", async () => {
  const { kv, inner, cached } = await setup();
  try {
    await inner.put(entry("marie"));
    const reading = cached.get("marie");
    await cached.put(entry("marie", ["univ-rennes"]));
    await reading;
    assert.deepEqual((await cached.get("marie"))?.structures, ["univ-rennes"]);
  } finally {
    kv.close();
  }
});

Deno.test("entry cache: holds at most maxEntries, hostile ids included", async () => {
  const { kv, cached, read } = await setup({ maxEntries: 2 });
  try {
    for (const id of ["constructor", "__proto__", "toString"]) await cached.get(id);
    read.length = 0;
    await cached.getMany(["constructor", "__proto__", "toString"]);
    assert.deepEqual(read, ["constructor"], "the oldest went first");
  } finally {
    kv.close();
  }
});

/** Every member of `structure`, as an audience lists them. */
async function membersOf(directory: Directory, structure: string): Promise<string[]> {
  const ids: string[] = [];
  await directory.members("STRUCTURE", structure, (page) => void ids.push(...page));
  return ids.sort();
}

Deno.test("entry cache: member lists come from memory while fresh, and any write forgets them", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const inner = createKvDirectory(kv);
    let lists = 0;
    const counted: Directory = {
      ...inner,
      members: (dim, value, visit) => {
        lists++;
        return inner.members(dim, value, visit);
      },
    };
    const cached = withEntryCache(counted, { ttlMs: 60_000 });
    await cached.put(entry("marie", ["univ-lyon"]));
    await cached.put(entry("paul", ["univ-lyon"]));
    assert.deepEqual(await membersOf(cached, "univ-lyon"), ["marie", "paul"]);
    assert.deepEqual(await membersOf(cached, "univ-lyon"), ["marie", "paul"]);
    assert.equal(lists, 1, "the second listing came from memory");
    // paul moves: both lists change at once.
    await cached.update("paul", (e) => e && { ...e, structures: ["univ-rennes"] });
    assert.deepEqual(await membersOf(cached, "univ-lyon"), ["marie"]);
    assert.deepEqual(await membersOf(cached, "univ-rennes"), ["paul"]);
    await cached.delete("marie");
    assert.deepEqual(await membersOf(cached, "univ-lyon"), []);
  } finally {
    kv.close();
  }
});

Deno.test("entry cache: a visitor that stops early is not given the rest", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const cached = withEntryCache(createKvDirectory(kv));
    for (let i = 0; i < 2500; i++) await cached.put(entry(`u${i}`, ["amphi"]));
    const pages: number[] = [];
    await cached.members("STRUCTURE", "amphi", (page) => {
      pages.push(page.length);
      return false;
    });
    assert.deepEqual(pages, [1000]);
    let total = 0;
    await cached.members("STRUCTURE", "amphi", (page) => void (total += page.length));
    assert.equal(total, 2500);
  } finally {
    kv.close();
  }
});

/** A directory in memory whose reads wait until the test releases them, counted. */
function heldDirectory() {
  const entries = new Map<string, DirectoryEntry>();
  const reads: string[][] = [];
  const held: { release(): void; fail(error: Error): void }[] = [];
  let onRead = () => {};
  const read = (ids: string[]) => {
    reads.push([...ids]);
    const snapshot = ids.map((id) => entries.get(id));
    onRead();
    return new Promise<(DirectoryEntry | undefined)[]>((resolve, reject) =>
      held.push({ release: () => resolve(snapshot), fail: reject })
    );
  };
  const directory: Directory = {
    put: (e) => {
      const created = !entries.has(e.id);
      entries.set(e.id, e);
      return Promise.resolve({ created });
    },
    update: () => Promise.reject(new Error("Not used")),
    delete: (id) => Promise.resolve(entries.delete(id)),
    get: async (id) => (await read([id]))[0],
    getMany: read,
    members: () => Promise.resolve(),
  };
  /** Resolves once the next read reaches the directory. */
  const nextRead = () => new Promise<void>((resolve) => onRead = resolve);
  /** Answers every read waiting. */
  const releaseAll = () => held.splice(0).forEach((h) => h.release());
  const failAll = (error: Error) => held.splice(0).forEach((h) => h.fail(error));
  return { entries, reads, directory, nextRead, releaseAll, failAll };
}

Deno.test("entry cache: concurrent misses share one read of the directory", async () => {
  const held = heldDirectory();
  for (const id of ["marie", "paul", "lea"]) held.entries.set(id, entry(id));
  const cached = withEntryCache(held.directory, { ttlMs: 60_000 });
  const reading = held.nextRead();
  const answers = Promise.all([
    cached.get("marie"),
    cached.getMany(["paul", "nobody"]),
    cached.get("lea"),
    cached.get("marie"),
  ]);
  await reading;
  held.releaseAll();
  const [marie, [paul, nobody], lea, again] = await answers;
  assert.deepEqual([marie?.id, paul?.id, nobody, lea?.id, again?.id], [
    "marie",
    "paul",
    undefined,
    "lea",
    "marie",
  ]);
  assert.deepEqual(held.reads, [["marie", "paul", "nobody", "lea"]], "one read for all four");
  // What was read, absences included, is now in memory.
  await cached.getMany(["marie", "paul", "nobody", "lea"]);
  assert.equal(held.reads.length, 1);
});

Deno.test("entry cache: a write while a shared read is in flight is seen by the next read", async () => {
  const held = heldDirectory();
  held.entries.set("marie", entry("marie", ["univ-lyon"]));
  const cached = withEntryCache(held.directory, { ttlMs: 60_000 });
  let reading = held.nextRead();
  const before = cached.get("marie");
  await reading;
  await cached.put(entry("marie", ["univ-rennes"]));
  // Asked after the write: a read of its own, not the one in flight.
  reading = held.nextRead();
  const after = cached.get("marie");
  await reading;
  held.releaseAll();
  assert.deepEqual((await before)?.structures, ["univ-lyon"]);
  assert.deepEqual((await after)?.structures, ["univ-rennes"]);
  // The read the write overtook was not kept.
  assert.deepEqual((await cached.get("marie"))?.structures, ["univ-rennes"]);
  assert.equal(held.reads.length, 2);
});

Deno.test("entry cache: a failed shared read fails every caller and caches nothing", async () => {
  const held = heldDirectory();
  held.entries.set("marie", entry("marie"));
  const cached = withEntryCache(held.directory, { ttlMs: 60_000 });
  const reading = held.nextRead();
  const calls = [cached.get("marie"), cached.getMany(["paul", "marie"]), cached.get("lea")];
  await reading;
  held.failAll(new Error("Directory unavailable"));
  for (const call of calls) await assert.rejects(call, /Directory unavailable/);
  assert.equal(held.reads.length, 1);
  const readAgain = held.nextRead();
  const again = cached.get("marie");
  await readAgain;
  held.releaseAll();
  assert.equal((await again)?.id, "marie", "read again after the failure");
});

Deno.test("entry cache: hostile ids share a read and come back as their own entries", async () => {
  const held = heldDirectory();
  for (const id of ["__proto__", "constructor"]) held.entries.set(id, entry(id));
  const cached = withEntryCache(held.directory, { ttlMs: 60_000 });
  const reading = held.nextRead();
  const answers = Promise.all([
    cached.get("__proto__"),
    cached.get("constructor"),
    cached.getMany(["toString", "__proto__"]),
  ]);
  await reading;
  held.releaseAll();
  const [proto, ctor, [toString, protoAgain]] = await answers;
  assert.equal(proto?.id, "__proto__");
  assert.equal(ctor?.id, "constructor");
  assert.equal(toString, undefined);
  assert.equal(protoAgain?.id, "__proto__");
  assert.deepEqual(held.reads, [["__proto__", "constructor", "toString"]]);
});
