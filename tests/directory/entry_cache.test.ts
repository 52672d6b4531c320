/** The directory entry cache: fresh entries from memory, writes forget them at once. */

import assert from "node:assert/strict";
import { createKvDirectory } from "../../src/directory/kv_directory.ts";
import type { DirectoryEntry } from "../../src/directory/directory.ts";
import { withEntryCache } from "../../src/directory/entry_cache.ts";
import type { Directory } from "../../src/directory/directory.ts";

const entry = (id: string, structures: string[] = ["univ-lyon"]): DirectoryEntry => ({
  id,
  email: `${id}@univ.test`,
  name: id,
  locale: "fr",
  category: "STUDENT",
  roles: ["ROLE_STUDENT"],
  structures,
  formations: [],
  groups: [],
  updated_at: "2026-03-05T12:00:00.000Z",
});

/** A KV directory counting the ids it reads, with a cache over it on a settable clock. */
async function setup(options: { maxEntries?: number } = {}) {
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
