/**
 * How long a 10,000-user audience takes to be durable: the `202` answer (event + fan-out
 * job committed) and the end of the fan-out (one stream item per member, written in
 * batches). A rough script; the full benchmark harness lives elsewhere.
 *
 *   deno run -A bench/audience_10k.ts [members=10000] [runs=3]
 */

import { upgradeWebSocket } from "../src/deno/upgrade.ts";
import { createAdapters } from "../src/app/adapters.ts";
import { createApp } from "../src/app/app.ts";
import { loadConfig } from "../src/config.ts";
import { SERVICE_KEY, testEnv } from "../tests/_support/server.ts";
import { writeBulkDirectory } from "../tests/_support/bulk_directory.ts";

const members = Number(Deno.args[0] ?? 10_000);
const runs = Number(Deno.args[1] ?? 3);
const dir = await Deno.makeTempDir({ prefix: "relais-bench-" });
const path = `${dir}/relais.kv`;
const t0 = performance.now();
await writeBulkDirectory(path, members, "amphi");
const loadMs = performance.now() - t0;

const config = loadConfig(testEnv({ RELAIS_KV_PATH: path, RELAIS_OUTBOX_DIR: `${dir}/outbox` }));
const kv = await Deno.openKv(path);
const adapters = createAdapters(config, kv);
const { store } = adapters;
const relais = createApp({ config, upgradeWebSocket, ...adapters });
await relais.start();
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, relais.app.fetch);
const origin = `http://127.0.0.1:${server.addr.port}`;

const results: { type: string; channels: string[]; accepted_ms: number; durable_ms: number }[] = [];
for (let run = 0; run < runs; run++) {
  for (
    const [type, channels] of [["NOTIFICATION", ["inapp"]], ["NOTIFICATION", ["inapp", "email"]], [
      "REALTIME",
      ["inapp"],
    ]] as const
  ) {
    const id = crypto.randomUUID();
    const started = performance.now();
    const res = await fetch(`${origin}/v1/events`, {
      method: "POST",
      headers: { "x-api-key": SERVICE_KEY, "content-type": "application/json" },
      body: JSON.stringify({
        metadata: { id, type, emitter: "bench", source: "bench", topic: "bench.audience" },
        payload: { fr: { title: "Titre", body: "Corps" }, en: { title: "Title", body: "Body" } },
        routing: { audience: { type: "GROUP", targets: ["amphi"] }, channels },
      }),
    });
    await res.body?.cancel();
    if (res.status !== 202) throw new Error(`Publish answered ${res.status}`);
    const accepted = performance.now() - started;
    await relais.publisher.idle();
    const durable = performance.now() - started;
    const status = (await store.getStatus(id))!;
    if (status.fan_out !== "done" || status.targeted !== members) {
      throw new Error("Fan-out incomplete");
    }
    results.push({
      type,
      channels: [...channels],
      accepted_ms: Math.round(accepted),
      durable_ms: Math.round(durable),
    });
  }
}
await server.shutdown();
await relais.close();
kv.close();
await Deno.remove(dir, { recursive: true });
console.log(JSON.stringify({ members, directory_load_ms: Math.round(loadMs), results }, null, 2));
