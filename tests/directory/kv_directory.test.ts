import assert from "node:assert/strict";
import type { Dimension, DirectoryEntry } from "../../src/directory/directory.ts";
import { createKvDirectory } from "../../src/directory/kv_directory.ts";
import { AppError } from "../../src/errors.ts";
import { countingKv } from "../_support/counting_kv.ts";
import { FIXTURE, loadFixtureDirectory } from "../_support/directory.ts";

async function members(
  directory: ReturnType<typeof createKvDirectory>,
  dim: Dimension,
  value: string,
) {
  const out: string[] = [];
  await directory.members(dim, value, (ids) => void out.push(...ids));
  return out.sort();
}

const entry = (id: string, patch: Partial<DirectoryEntry> = {}): DirectoryEntry => ({
  id,
  email: `${id}@example.org`,
  name: id,
  locale: "fr",
  category: "STUDENT",
  roles: ["ROLE_STUDENT"],
  structures: ["univ-x"],
  formations: ["f1"],
  groups: ["g1"],
  updated_at: new Date(0).toISOString(),
  ...patch,
});

Deno.test("kv directory indexes every membership dimension of the fixture users", async () => {
  using kv = await Deno.openKv(":memory:");
  const directory = createKvDirectory(kv);
  await loadFixtureDirectory(directory);

  assert.deepEqual(
    await members(directory, "GROUP", "licence-info-l2-td1"),
    [FIXTURE.camille, FIXTURE.yanis].sort(),
  );
  assert.deepEqual(await members(directory, "ROLE", "institution-admin"), [FIXTURE.admin]);
  assert.deepEqual(await members(directory, "STRUCTURE", "autre-univ"), [FIXTURE.lucas]);
  assert.deepEqual(
    await members(directory, "FORMATION", "licence-info"),
    [FIXTURE.camille, FIXTURE.yanis, FIXTURE.helene].sort(),
  );
  assert.deepEqual(
    await members(directory, "CATEGORY", "STAFF"),
    [FIXTURE.helene, FIXTURE.admin].sort(),
  );
  assert.equal((await members(directory, "ALL", "")).length, 6);
});

Deno.test("kv directory moves index entries when a user changes group, and drops them on delete", async () => {
  using kv = await Deno.openKv(":memory:");
  const directory = createKvDirectory(kv);
  assert.deepEqual(await directory.put(entry("u1")), { created: true });

  assert.deepEqual(await directory.put(entry("u1", { groups: ["g2"], roles: [] })), {
    created: false,
  });

  assert.deepEqual(await members(directory, "GROUP", "g1"), []);
  assert.deepEqual(await members(directory, "GROUP", "g2"), ["u1"]);
  assert.deepEqual(await members(directory, "ROLE", "ROLE_STUDENT"), []);
  assert.equal((await directory.get("u1"))?.groups[0], "g2");

  assert.equal(await directory.delete("u1"), true);
  assert.equal(await directory.delete("u1"), false);
  const left: unknown[] = [];
  for await (const e of kv.list({ prefix: ["dir_member"] })) left.push(e.key);
  assert.deepEqual(left, []);
  assert.equal(await directory.get("u1"), undefined);
});

Deno.test("kv directory keeps indexes consistent under concurrent updates of one user", async () => {
  using kv = await Deno.openKv(":memory:");
  const directory = createKvDirectory(kv);
  await directory.put(entry("u1", { groups: [] }));

  await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      directory.update("u1", (current) => ({
        ...current!,
        groups: [...current!.groups, `g${i}`],
      }))),
  );

  const stored = (await directory.get("u1"))!;
  assert.equal(stored.groups.length, 20);
  const indexed: string[] = [];
  for await (const e of kv.list({ prefix: ["dir_member", "GROUP"] })) {
    indexed.push(e.key[2] as string);
  }
  assert.deepEqual(indexed.sort(), [...stored.groups].sort());
});

Deno.test("kv directory refuses an entry too large for one commit with a 413 error", async () => {
  using kv = await Deno.openKv(":memory:");
  const directory = createKvDirectory(kv);
  const long = (p: string) => Array.from({ length: 100 }, (_, i) => `${p}-${i}-${"x".repeat(180)}`);

  await assert.rejects(
    directory.put(
      entry("u1", {
        groups: long("g"),
        roles: long("r"),
        structures: long("s"),
        formations: long("f"),
      }),
    ),
    (e) => e instanceof AppError && e.status === 413,
  );
  assert.equal(await directory.get("u1"), undefined);
});

/** 40 memberships of 100 characters in each of the four dimensions, named after `tag`. */
const wide = (tag: string, char = "x"): Partial<DirectoryEntry> => {
  const list = (dim: string) =>
    Array.from({ length: 40 }, (_, i) => `${tag}-${dim}-${i}-`.padEnd(100, char));
  return { groups: list("g"), roles: list("r"), structures: list("s"), formations: list("f") };
};

/** Every membership `user` is indexed under, as `dimension:value`. */
async function indexedOf(kv: Deno.Kv, user: string) {
  const out: string[] = [];
  for await (const e of kv.list({ prefix: ["dir_member"] })) {
    if (e.key[3] === user) out.push(`${String(e.key[1])}:${String(e.key[2])}`);
  }
  return out.sort();
}

/** The memberships an entry is indexed under, as `dimension:value`. */
const membershipsOf = (e: DirectoryEntry) =>
  [
    "ALL:",
    ...(e.category ? [`CATEGORY:${e.category}`] : []),
    ...e.groups.map((v) => `GROUP:${v}`),
    ...e.roles.map((v) => `ROLE:${v}`),
    ...e.structures.map((v) => `STRUCTURE:${v}`),
    ...e.formations.map((v) => `FORMATION:${v}`),
  ].sort();

Deno.test("kv directory replaces 160 long memberships with 160 others, each entry storable alone", async () => {
  using kv = await Deno.openKv(":memory:");
  const directory = createKvDirectory(kv);
  // ASCII fits in one commit once keys are counted in bytes; three-byte characters take
  // two commits (the old and new index keys together pass KV's key bytes of one).
  for (const char of ["x", "語"]) {
    const id = `eve-${char}`;
    assert.deepEqual(await directory.put(entry(id, wide("a", char))), { created: true });
    const replaced = entry(id, wide("b", char));
    assert.deepEqual(await directory.put(replaced), { created: false });
    assert.deepEqual((await directory.get(id))?.groups, replaced.groups);
    assert.deepEqual(await indexedOf(kv, id), membershipsOf(replaced));
  }
});

Deno.test("kv directory never leaves a user out of an index of their entry when a two-commit replacement dies between", async () => {
  using raw = await Deno.openKv(":memory:");
  const before = entry("eve", wide("a", "語"));
  await createKvDirectory(raw).put(before);
  // The process dies once the replacement's first commit (the new index keys) has landed.
  const { kv } = countingKv(raw, (n) => {
    if (n === 1) throw new Error("killed");
  });
  const after = entry("eve", wide("b", "語"));
  await assert.rejects(createKvDirectory(kv).put(after), /killed/);
  const directory = createKvDirectory(raw);
  assert.deepEqual((await directory.get("eve"))?.groups, before.groups);
  const indexed = await indexedOf(raw, "eve");
  for (const m of membershipsOf(before)) assert.ok(indexed.includes(m), m);
  // Written again, the entry and its indexes are the new ones.
  await directory.put(after);
  assert.deepEqual(await indexedOf(raw, "eve"), membershipsOf(after));
});

Deno.test("kv directory keeps indexes exact when two-commit replacements of one user race", async () => {
  using kv = await Deno.openKv(":memory:");
  const directory = createKvDirectory(kv);
  await directory.put(entry("eve", wide("start", "語")));
  await Promise.all(
    ["a", "b", "c", "d"].map((tag) => directory.put(entry("eve", wide(tag, "語")))),
  );
  const stored = (await directory.get("eve"))!;
  assert.deepEqual(await indexedOf(kv, "eve"), membershipsOf(stored));
});

Deno.test("kv directory reads many entries back in the order asked, missing ones included", async () => {
  using kv = await Deno.openKv(":memory:");
  const directory = createKvDirectory(kv);
  for (let i = 0; i < 1000; i += 3) await directory.put(entry(`u${i}`));
  const ids = Array.from({ length: 1000 }, (_, i) => `u${999 - i}`);
  const entries = await directory.getMany(ids);
  assert.equal(entries.length, 1000);
  entries.forEach((e, i) => {
    const n = 999 - i;
    assert.equal(e?.id, n % 3 === 0 ? `u${n}` : undefined, `position ${i}`);
  });
});
