/**
 * The ingest's consumer against entries a broken or hostile producer writes: a real Redis
 * stream and consumer group, the real Redis adapter. Each bad entry is dead-lettered or
 * skipped and acked once, and the good entries after it still flow.
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import type { Envelope } from "../../src/schemas/envelope.ts";
import { createIngest } from "../../src/ingest/ingest.ts";
import { createRedisChangeStream } from "../../src/ingest/redis_change_stream.ts";
import { parseRules } from "../../src/ingest/rules.ts";
import { eventually } from "../_support/eventually.ts";
import { ACTIVITY_RULE, CHANGE } from "../_support/ingest.ts";
import { skipWithoutRedis, startRedis } from "../_support/redis.ts";

const ignore = skipWithoutRedis();

/** A change of activity `id` at log position `lsn`, with `after` patched. */
function activityChange(lsn: number, id: unknown, after: Record<string, unknown> = {}) {
  return {
    ...CHANGE,
    before: { ...CHANGE.before, id },
    after: { ...CHANGE.after, id, ...after },
    source: { ...CHANGE.source, lsn },
  };
}

/** JSON arrays nested `depth` deep. */
const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);

/**
 * Runs `fn` with a fresh stream on a real Redis and an ingest reading it as `node-a`;
 * what the ingest publishes is collected in `published`.
 */
async function withIngest(
  rules: unknown[],
  fn: (t: {
    client: Redis;
    stream: string;
    published: Envelope[];
    errors: string[];
    add(data: string): Promise<string>;
    ingest: ReturnType<typeof createIngest>;
  }) => Promise<void>,
) {
  const redis = await startRedis();
  const stream = `test-ingest-${crypto.randomUUID()}`;
  const client = new Redis(redis.url);
  const published: Envelope[] = [];
  const errors: string[] = [];
  const ingest = createIngest({
    stream: createRedisChangeStream({
      url: redis.url,
      stream,
      group: "relais",
      consumer: "node-a",
    }),
    group: "relais",
    rules: parseRules(JSON.stringify({ rules })),
    claimIdleMs: 60_000,
    blockMs: 50,
    backoff: { baseMs: 20, maxMs: 100, jitter: "none" },
    publish(envelope) {
      published.push(envelope);
      return Promise.resolve({ replayed: false });
    },
    onError: (message, error) => void errors.push(`${message}: ${error}`),
  });
  try {
    ingest.start();
    await eventually(async () => (await ingest.state()).status === "running");
    await fn({
      client,
      stream,
      published,
      errors,
      add: (data) => client.xadd(stream, "*", "data", data) as Promise<string>,
      ingest,
    });
  } finally {
    await ingest.stop();
    await client.del(stream, `${stream}:dead`);
    client.disconnect();
    await redis.stop();
  }
}

Deno.test({
  name: "a deeply nested change is dead-lettered once and the entries after it still flow",
  ignore,
  async fn() {
    await withIngest([ACTIVITY_RULE], async (t) => {
      const deep = [
        // Under the payload cap, in an allowed column: the store's serialiser overflows its
        // stack on it, at each attempt. Then far deeper, in the key.
        await t.add(
          JSON.stringify(activityChange(100, 1, { title: "@" })).replace('"@"', nested(20_000)),
        ),
        await t.add(JSON.stringify(activityChange(101, "@")).replace(/"@"/g, nested(100_000))),
      ];
      const good = await t.add(JSON.stringify(activityChange(102, 3)));

      const state = await eventually(async () => {
        const s = await t.ingest.state();
        return s.last_id === good && s.pending === 0 ? s : undefined;
      });
      assert.deepEqual(t.published.map((e) => (e.payload.after as { id: unknown }).id), [3]);
      assert.equal(state.counts.entries.dead, 2);
      assert.equal(state.counts.entries.published, 1);
      assert.equal(state.counts.errors, 0, t.errors.join("\n"));
      const dead = await eventually(async () => {
        const entries = await t.client.xrange(`${t.stream}:dead`, "-", "+");
        return entries.length === deep.length ? entries : undefined;
      });
      assert.deepEqual(
        dead.map(([, f]) => [f[f.indexOf("entry") + 1], f[f.indexOf("reason") + 1]]),
        deep.map((id) => [id, "invalid_json"]),
      );
      assert.match(dead[0][1][dead[0][1].indexOf("detail") + 1], /nests deeper than/);
    });
  },
});
