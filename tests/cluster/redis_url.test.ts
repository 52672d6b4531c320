/**
 * The Redis URL forms: one server (`redis://`, `rediss://`) or a Redis Cluster given by
 * its seeds (`redis+cluster://h1:p1,h2:p2`), as the configuration and `connectRedis`
 * read them.
 */

import assert from "node:assert/strict";
import { Cluster, Redis } from "ioredis";
import { connectRedis } from "../../src/cluster/redis_connect.ts";
import { parseRedisUrl, redisUrlProblem } from "../../src/cluster/redis_url.ts";
import { loadConfig } from "../../src/config.ts";
import { testEnv } from "../_support/server.ts";

Deno.test("a redis url names one server, as given", () => {
  for (const url of ["redis://127.0.0.1:6379", "rediss://user:pw@cache.example.org:6380/2"]) {
    assert.deepEqual(parseRedisUrl(url), { kind: "server", url });
  }
});

Deno.test("a redis+cluster url names its seeds, credentials and TLS", () => {
  assert.deepEqual(parseRedisUrl("redis+cluster://10.0.0.1:7000,10.0.0.2:7001, node-3 /"), {
    kind: "cluster",
    seeds: [
      { host: "10.0.0.1", port: 7000 },
      { host: "10.0.0.2", port: 7001 },
      { host: "node-3", port: 6379 },
    ],
    tls: false,
  });
  assert.deepEqual(parseRedisUrl("rediss+cluster://relais:p%40ss%3Aw@[::1]:7000,[fd00::2]"), {
    kind: "cluster",
    seeds: [{ host: "::1", port: 7000 }, { host: "fd00::2", port: 6379 }],
    username: "relais",
    password: "p@ss:w",
    tls: true,
  });
  assert.deepEqual(parseRedisUrl("REDIS+CLUSTER://:secret@h:1"), {
    kind: "cluster",
    seeds: [{ host: "h", port: 1 }],
    password: "secret",
    tls: false,
  });
});

Deno.test("a malformed redis url is refused naming what is wrong, never its password", () => {
  const cases: [string, RegExp][] = [
    ["not a url", /expected a URL starting with "redis:\/\/", "rediss:\/\/", "redis\+cluster/],
    ["http://h:1", /expected a URL starting with "redis:\/\/"/],
    ["redis+cluster://", /a cluster URL names no node/],
    ["redis+cluster://u:secret@", /a cluster URL names no node/],
    ["redis+cluster://h:1,,h:2", /bad cluster node ""/],
    ["redis+cluster://h:1,h:99999", /bad cluster node "h:99999"/],
    ["redis+cluster://h:port", /bad cluster node "h:port"/],
    ["redis+cluster://h:1/2", /a cluster URL has no database path/],
    ["redis+cluster://h:1?tls=1", /a cluster URL takes no query/],
    ["redis+cluster://u:%zz@h:1", /bad percent-encoding in the credentials/],
  ];
  for (const [url, message] of cases) {
    assert.throws(() => parseRedisUrl(url), message, url);
    assert.throws(() => parseRedisUrl(url), (e: Error) => !e.message.includes("secret"), url);
    assert.match(redisUrlProblem(url) ?? "", message, url);
  }
  assert.equal(redisUrlProblem("redis+cluster://h:1"), undefined);
});

Deno.test("the configuration takes a redis+cluster REDIS_URL and refuses a malformed one", () => {
  const url = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001";
  assert.equal(loadConfig(testEnv({ REDIS_URL: url, RELAIS_CLUSTER: "redis" })).redisUrl, url);
  assert.throws(
    () => loadConfig(testEnv({ REDIS_URL: "redis+cluster://h:1/0" })),
    /^ConfigError: Invalid REDIS_URL: a cluster URL has no database path/,
  );
});

Deno.test("connectRedis builds a Redis for a server url and a Cluster for a cluster url", () => {
  const server = connectRedis("redis://127.0.0.1:1", { lazyConnect: true });
  const cluster = connectRedis("redis+cluster://u:pw@127.0.0.1:1,127.0.0.1:2", {
    lazyConnect: true,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    connectionName: "relais-test",
    maxRetriesPerRequest: 0,
  });
  try {
    assert.ok(server instanceof Redis);
    assert.ok(cluster instanceof Cluster);
    // Cluster-wide options on the cluster, the others (and the credentials) on each node.
    assert.equal(cluster.options.enableOfflineQueue, false);
    assert.equal(cluster.options.lazyConnect, true);
    assert.equal(typeof cluster.options.clusterRetryStrategy, "function");
    assert.deepEqual(cluster.options.redisOptions, {
      connectionName: "relais-test",
      maxRetriesPerRequest: 0,
      username: "u",
      password: "pw",
    });
  } finally {
    server.disconnect();
    cluster.disconnect();
  }
});
