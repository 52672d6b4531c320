/**
 * Caches kept true across the cluster (a real `redis-server`): two nodes share one Redis
 * store and bus; a write through one node's caches is forgotten by the other's at once,
 * not when its TTL (a minute) runs out; a malformed announcement is ignored.
 */

import assert from "node:assert/strict";
import { type Bus } from "../../src/cluster/bus.ts";
import { createRedisBus } from "../../src/cluster/redis_bus.ts";
import { CACHES_TOPIC, readCaches } from "../../src/cluster/shared_caches.ts";
import type { Directory } from "../../src/directory/directory.ts";
import { createKvDirectory } from "../../src/directory/kv_directory.ts";
import { DEFAULT_PREFERENCES } from "../../src/preferences/preferences.ts";
import { createKvPreferences } from "../../src/preferences/kv_preferences.ts";
import { studentEntry } from "../_support/directory.ts";
import { eventually } from "../_support/eventually.ts";
import { freshPrefix, ignoreRedis, openRedisKv, redisUrl } from "../_support/redis_kv.ts";

const entry = studentEntry;

function test(name: string, fn: () => Promise<void>) {
  Deno.test({
    name: `shared caches: ${name}`,
    ignore: ignoreRedis,
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });
}

/** Two nodes on one Redis store and bus, each with its caches. */
async function twoNodes() {
  const prefix = freshPrefix();
  const errors: unknown[] = [];
  const nodes = await Promise.all(["n1", "n2"].map(async (node) => {
    const kv = openRedisKv(prefix);
    const bus: Bus = createRedisBus(redisUrl(), { node, prefix });
    await bus.ready();
    const caches = readCaches(
      { directory: createKvDirectory(kv), preferences: createKvPreferences(kv) },
      bus,
      (message, error) => errors.push([message, error]),
    );
    return { kv, bus, ...caches };
  }));
  return {
    nodes,
    errors,
    async close() {
      for (const n of nodes) {
        await n.bus.close();
        n.kv.close();
      }
    },
  };
}

/** The members of `structure` as node `n` answers them. */
async function members(n: { directory: Directory }, structure: string) {
  const ids: string[] = [];
  await n.directory.members("STRUCTURE", structure, (page) => void ids.push(...page));
  return ids.sort();
}

test("a write through one node is forgotten by the other at once", async () => {
  const { nodes: [n1, n2], errors, close } = await twoNodes();
  try {
    // A user called `constructor` is one like any other.
    for (const id of ["marie", "constructor"]) await n1.directory.put(entry(id, ["univ-lyon"]));
    await n1.preferences.put("marie", { ...DEFAULT_PREFERENCES, timezone: "Europe/Paris" });
    // n2 reads and keeps them.
    assert.deepEqual((await n2.directory.get("marie"))?.structures, ["univ-lyon"]);
    assert.deepEqual(await members(n2, "univ-lyon"), ["constructor", "marie"]);
    assert.equal((await n2.preferences.get("marie"))?.timezone, "Europe/Paris");

    await n1.directory.put(entry("constructor", ["univ-rennes"]));
    await n1.directory.update("marie", (e) => e && { ...e, structures: ["univ-rennes"] });
    await n1.preferences.update("marie", (p) => ({ ...p!, timezone: "America/Cayenne" }));
    // Long before the minute of their TTL, n2 answers what n1 wrote.
    await eventually(
      async () => (await n2.directory.get("marie"))?.structures[0] === "univ-rennes",
      5000,
      "n2 to see marie's new structure",
    );
    assert.deepEqual(
      (await n2.directory.getMany(["constructor", "marie"])).map((e) => e?.structures[0]),
      ["univ-rennes", "univ-rennes"],
    );
    assert.deepEqual(await members(n2, "univ-lyon"), []);
    assert.deepEqual(await members(n2, "univ-rennes"), ["constructor", "marie"]);
    await eventually(
      async () => (await n2.preferences.get("marie"))?.timezone === "America/Cayenne",
      5000,
      "n2 to see marie's new time zone",
    );
    await n1.directory.delete("marie");
    await eventually(async () => (await n2.directory.get("marie")) === undefined, 5000);
    assert.deepEqual(errors, []);
  } finally {
    await close();
  }
});

test("a malformed announcement is ignored, the next good one is heard", async () => {
  const { nodes: [n1, n2], errors, close } = await twoNodes();
  try {
    await n1.directory.put(entry("paul", ["univ-lyon"]));
    assert.deepEqual((await n2.directory.get("paul"))?.structures, ["univ-lyon"]);
    for (
      const junk of [
        "not json",
        '{"directory":"paul"}',
        '{"directory":[1,{},null]}',
        '{"__proto__":{"directory":["paul"]}}',
        "null",
      ]
    ) await n1.bus.publish(CACHES_TOPIC, junk);
    await n1.directory.put(entry("paul", ["univ-nantes"]));
    await eventually(
      async () => (await n2.directory.get("paul"))?.structures[0] === "univ-nantes",
      5000,
      "n2 to hear the good announcement",
    );
    assert.equal(errors.length, 1, "the one that is not JSON is reported");
  } finally {
    await close();
  }
});
