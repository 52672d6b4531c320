import assert from "node:assert/strict";
import * as v from "valibot";
import { createDirectoryAudienceResolver } from "../../src/audience/directory_audience.ts";
import type { Directory } from "../../src/directory/directory.ts";
import { withEntryCache } from "../../src/directory/entry_cache.ts";
import { createKvDirectory } from "../../src/directory/kv_directory.ts";
import { AppError } from "../../src/errors.ts";
import { AudienceSchema } from "../../src/schemas/envelope.ts";
import { FIXTURE, fixtureEvents, loadFixtureDirectory } from "../_support/directory.ts";

const { camille, yanis, emma, helene, admin, lucas } = FIXTURE;

async function setup(maxAudience = 100) {
  const kv = await Deno.openKv(":memory:");
  const directory = createKvDirectory(kv);
  await loadFixtureDirectory(directory);
  const resolver = createDirectoryAudienceResolver(directory, { maxAudience });
  return {
    kv,
    async resolve(audience: unknown) {
      const result = await resolver.resolve(v.parse(AudienceSchema, audience));
      return { users: result.users.toSorted(), unknown: result.unknown };
    },
  };
}

const sorted = (...ids: string[]) => ids.toSorted();

const cases: [string, unknown, string[]][] = [
  ["USER", { type: "USER", targets: [helene, camille] }, [helene, camille]],
  ["GROUP", { type: "GROUP", targets: ["licence-info-l2-td1"] }, [camille, yanis]],
  ["two GROUPs", { type: "GROUP", targets: ["licence-info-l2-td1", "master-mee-m1"] }, [
    camille,
    yanis,
    emma,
  ]],
  ["ROLE", { type: "ROLE", targets: ["ROLE_STAFF"] }, [helene, admin]],
  ["STRUCTURE", { type: "STRUCTURE", targets: ["autre-univ"] }, [lucas]],
  ["FORMATION", { type: "FORMATION", targets: ["licence-info"] }, [camille, yanis, helene]],
  ["ALL", { type: "ALL" }, [camille, yanis, emma, helene, admin, lucas]],
  [
    "ROLE within a STRUCTURE",
    { type: "ROLE", targets: ["ROLE_STUDENT"], within: { STRUCTURE: ["autre-univ"] } },
    [lucas],
  ],
  [
    "ALL within a CATEGORY and a STRUCTURE",
    { type: "ALL", within: { CATEGORY: ["STAFF"], STRUCTURE: ["univ-exemple"] } },
    [helene, admin],
  ],
  [
    "FORMATION within a ROLE",
    { type: "FORMATION", targets: ["licence-info"], within: { ROLE: ["ROLE_STAFF"] } },
    [helene],
  ],
  [
    "USER within a GROUP",
    {
      type: "USER",
      targets: [camille, emma, lucas],
      within: { GROUP: ["licence-info-l2-td1", "but-gea-1a"] },
    },
    [camille, lucas],
  ],
];

for (const [name, audience, expected] of cases) {
  Deno.test(`directory audience ${name} reaches exactly the expected fixture users`, async () => {
    const { kv, resolve } = await setup();
    try {
      const result = await resolve(audience);
      assert.deepEqual(result.users, sorted(...expected));
      assert.deepEqual(result.unknown, []);
    } finally {
      kv.close();
    }
  });
}

Deno.test("directory audience resolves each fixture event to its intended recipients", async () => {
  const { kv, resolve } = await setup();
  try {
    const events = await fixtureEvents();
    const audienceOf = (name: string) => (events[name].routing as { audience: unknown }).audience;
    assert.deepEqual((await resolve(audienceOf("ask_for_feedback"))).users, [helene]);
    assert.deepEqual(
      (await resolve(audienceOf("activity_modified"))).users,
      sorted(camille, yanis),
    );
    assert.deepEqual((await resolve(audienceOf("role_granted"))).users, [admin]);
    assert.deepEqual(
      (await resolve(audienceOf("activity_updated_realtime"))).users,
      sorted(camille, yanis, helene),
    );
    assert.deepEqual(
      (await resolve(audienceOf("maintenance_broadcast"))).users,
      sorted(helene, admin),
    );
  } finally {
    kv.close();
  }
});

Deno.test("directory audience reports targets that match nobody", async () => {
  const { kv, resolve } = await setup();
  try {
    const groups = await resolve({
      type: "GROUP",
      targets: ["licence-info-l2-td1", "no-such-group"],
    });
    assert.deepEqual(groups, { users: sorted(camille, yanis), unknown: ["no-such-group"] });

    // A USER target the directory does not know still gets the item (its id is a token's
    // sub), and is reported so that a missing sync shows.
    const users = await resolve({ type: "USER", targets: [camille, "ghost"] });
    assert.deepEqual(users, { users: sorted(camille, "ghost"), unknown: ["ghost"] });

    const narrowed = await resolve({
      type: "USER",
      targets: [camille, "ghost"],
      within: { GROUP: ["licence-info-l2-td1"] },
    });
    assert.deepEqual(narrowed, { users: [camille], unknown: ["ghost"] });
  } finally {
    kv.close();
  }
});

Deno.test("directory audience refuses an audience over the maximum", async () => {
  const { kv, resolve } = await setup(2);
  try {
    await assert.rejects(
      resolve({ type: "FORMATION", targets: ["licence-info"] }),
      (e) =>
        e instanceof AppError && e.code === "validation_failed" &&
        /Audience too large/.test(e.message),
    );
    await assert.rejects(resolve({ type: "USER", targets: ["a", "b", "c"] }), AppError);
    // Narrowed below the maximum, the same base is fine.
    const ok = await resolve({ type: "ALL", within: { ROLE: ["institution-admin"] } });
    assert.deepEqual(ok.users, [admin]);
  } finally {
    kv.close();
  }
});

Deno.test("directory audience: USER audiences of concurrent publishes share one directory read", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const inner = createKvDirectory(kv);
    await loadFixtureDirectory(inner);
    const reads: string[][] = [];
    const counted: Directory = {
      ...inner,
      get: (id) => {
        reads.push([id]);
        return inner.get(id);
      },
      getMany: (ids) => {
        reads.push([...ids]);
        return inner.getMany(ids);
      },
    };
    // As the server wires it: the resolver reads through the entry cache.
    const resolver = createDirectoryAudienceResolver(withEntryCache(counted), {
      maxAudience: 100,
    });
    const targets = [camille, yanis, "ghost", emma, helene, camille];
    const results = await Promise.all(
      targets.map((id) =>
        resolver.resolve(v.parse(AudienceSchema, { type: "USER", targets: [id] }))
      ),
    );
    assert.deepEqual(
      results.map((r) => r.unknown),
      [[], [], ["ghost"], [], [], []],
    );
    assert.deepEqual(results.map((r) => r.users), targets.map((id) => [id]));
    assert.deepEqual(reads, [[camille, yanis, "ghost", emma, helene]], "one read, each id once");
  } finally {
    kv.close();
  }
});
