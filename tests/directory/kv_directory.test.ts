import assert from "node:assert/strict";
import type { Dimension, DirectoryEntry } from "../../src/directory/directory.ts";
import { createKvDirectory } from "../../src/directory/kv_directory.ts";
import { AppError } from "../../src/errors.ts";
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
    directory.put(entry("u1", { groups: long("g"), roles: long("r"), structures: long("s") })),
    (e) => e instanceof AppError && e.status === 413,
  );
  assert.equal(await directory.get("u1"), undefined);
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
