/**
 * `deno task cluster` as a newcomer runs it: a real `redis-server`, three relais nodes and
 * the proxy, on free loopback ports with a temporary data folder. Every node answers
 * through the proxy; a Ctrl-C (SIGINT) stops them all, and so does the death of one node,
 * leaving no process behind.
 */

import assert from "node:assert/strict";
import { parseOptions, UsageError } from "../../src/cluster/dev/options.ts";
import { eventually } from "../_support/eventually.ts";
import { installed, skipUnless } from "../_support/requirements.ts";

const ignore = skipUnless(installed("redis-server"), {
  tests: "the development cluster tests",
  missing: '"redis-server" is not installed',
  install: "apt-get install -y redis-server",
});

const root = new URL("../../", import.meta.url);
const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 30_000;

/** The `cluster` task of `deno.json`, as arguments of this `deno`. */
async function clusterTaskArgs(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
  const words = String(config.tasks.cluster).trim().split(/\s+/);
  assert.deepEqual(words.slice(0, 2), ["deno", "run"], "the cluster task runs a module");
  return words.slice(1);
}

/** Lines of a stream as they come. */
function lines(stream: ReadableStream<Uint8Array<ArrayBuffer>>) {
  const got: string[] = [];
  const done = (async () => {
    let rest = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + text).split("\n");
      rest = parts.pop()!;
      got.push(...parts);
    }
    if (rest) got.push(rest);
  })();
  return { got, done };
}

/** A launched cluster: the launcher process, and each child's pid and port from its banner. */
interface Launched {
  dataDir: string;
  process: Deno.ChildProcess;
  stdout: string[];
  stderr: string[];
  drained: Promise<unknown>;
  proxyPort: number;
  /** Name (`redis`, `n1`…) → pid and port. */
  children: Map<string, { pid: number; port: number }>;
}

/** Starts the cluster task with `dataDir` on free ports; resolves once it prints its proxy. */
async function launch(dataDir: string, onStart: (launched: Launched) => void): Promise<Launched> {
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      ...await clusterTaskArgs(),
      ...["--port", "0", "--node-port", "0", "--redis-port", "0", "--data-dir", dataDir],
    ],
    cwd: root,
    // The cluster starts its own Redis even where the tests were given one.
    env: { REDIS_URL: "", RELAIS_LOG_LEVEL: "info", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = lines(process.stdout);
  const err = lines(process.stderr);
  const launched: Launched = {
    dataDir,
    process,
    stdout: out.got,
    stderr: err.got,
    drained: Promise.all([out.done, err.done]),
    proxyPort: 0,
    children: new Map(),
  };
  onStart(launched);
  const ended = process.status.then(() => {
    throw new Error(`The cluster ended before listening:\n${err.got.join("\n")}`);
  });
  ended.catch(() => {});
  const listening = await Promise.race([
    eventually(
      () => out.got.find((line) => line.startsWith("relais cluster listening on ")),
      START_TIMEOUT_MS,
      "the cluster's listening line",
    ),
    ended,
  ]);
  launched.proxyPort = Number(/:(\d+)$/.exec(listening)?.[1]);
  for (const line of out.got) {
    const child = /^ {2}(redis|n\d+) +\S+:\/\/127\.0\.0\.1:(\d+) .*pid (\d+)/.exec(line);
    if (child) launched.children.set(child[1], { port: Number(child[2]), pid: Number(child[3]) });
  }
  return launched;
}

/** Whether a process with this pid exists. */
function alive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT"); // harmless to a live process; fails for a missing one
    return true;
  } catch {
    return false;
  }
}

async function refuses(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return false;
  } catch (e) {
    return e instanceof Deno.errors.ConnectionRefused;
  }
}

/** `GET /readyz` on a connection of its own through `port`, tagged with `requestId`. */
async function readyz(port: number, requestId: string): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let text = "";
  try {
    await conn.write(
      new TextEncoder().encode(
        `GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n`,
      ),
    );
    const decoder = new TextDecoder();
    for await (const chunk of conn.readable) text += decoder.decode(chunk, { stream: true });
  } catch (e) {
    conn.close();
    throw e;
  }
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
}

/** Resolves to the status, or throws once `ms` have passed. */
async function exited(process: Deno.ChildProcess, ms: number): Promise<Deno.CommandStatus> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      process.status,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`The cluster did not stop within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `fn` on a launched cluster; whatever happens, nothing it started is left running. */
async function withCluster(fn: (launched: Launched) => Promise<void>): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "relais-dev-cluster-" });
  let launched: Launched | undefined;
  try {
    await fn(await launch(dataDir, (l) => launched = l));
  } finally {
    if (launched) {
      for (const { pid } of launched.children.values()) {
        if (alive(pid)) Deno.kill(pid, "SIGKILL");
      }
      try {
        launched.process.kill("SIGKILL");
      } catch { /* already ended */ }
      await launched.process.status;
      await launched.drained;
    }
    await Deno.remove(dataDir, { recursive: true });
  }
}

Deno.test({
  name: "cluster task serves each node through the proxy and stops them all on Ctrl-C",
  ignore,
  async fn() {
    await withCluster(async (cluster) => {
      assert.deepEqual([...cluster.children.keys()].sort(), ["n1", "n2", "n3", "redis"]);
      // Redis keeps an append-only file in the data folder given.
      assert.ok((await Deno.stat(`${cluster.dataDir}/redis/appendonlydir`)).isDirectory);

      // Probes through the proxy until each node has logged one of them.
      const probe = `probe-${crypto.randomUUID()}`;
      const answered = (node: string) =>
        cluster.stdout.some((line) => line.startsWith(`${node} `) && line.includes(probe));
      let sent = 0;
      await eventually(
        async () => {
          assert.equal(await readyz(cluster.proxyPort, `${probe}-${sent++}`), 200);
          return ["n1", "n2", "n3"].every(answered);
        },
        20_000,
        "a readiness probe through the proxy on every node",
      );

      cluster.process.kill("SIGINT");
      const status = await exited(cluster.process, STOP_TIMEOUT_MS);
      assert.equal(status.code, 0, cluster.stderr.join("\n"));
      for (const [name, { pid, port }] of cluster.children) {
        assert.equal(alive(pid), false, `${name} (pid ${pid}) is still running`);
        assert.ok(await refuses(port), `something still listens on the port of ${name}`);
      }
      assert.ok(await refuses(cluster.proxyPort), "the proxy still listens");
    });
  },
});

Deno.test({
  name: "cluster task stops every child when one node dies, and exits with 1",
  ignore,
  async fn() {
    await withCluster(async (cluster) => {
      Deno.kill(cluster.children.get("n2")!.pid, "SIGKILL");
      const status = await exited(cluster.process, STOP_TIMEOUT_MS);
      assert.equal(status.code, 1);
      assert.ok(
        cluster.stderr.some((line) => line.includes("n2 exited (signal SIGKILL)")),
        cluster.stderr.join("\n"),
      );
      for (const [name, { pid }] of cluster.children) {
        assert.equal(alive(pid), false, `${name} (pid ${pid}) is still running`);
      }
    });
  },
});

Deno.test("cluster options come from flags, then the environment, then the defaults", () => {
  assert.deepEqual(parseOptions([], {}), {
    port: 8080,
    nodes: 3,
    nodePort: 8081,
    redisPort: 6390,
    dataDir: "data/cluster",
  });
  const env = { RELAIS_DEV_CLUSTER_NODES: "2", RELAIS_DEV_CLUSTER_PORT: "9000" };
  assert.deepEqual(parseOptions(["--port", "9100", "--data-dir", "/tmp/x"], env), {
    port: 9100,
    nodes: 2,
    nodePort: 8081,
    redisPort: 6390,
    dataDir: "/tmp/x",
  });
  assert.throws(
    () => parseOptions(["--nodes", "0"], {}),
    new UsageError('Invalid --nodes "0": expected an integer from 1 to 16'),
  );
  assert.throws(
    () => parseOptions([], { RELAIS_DEV_CLUSTER_PORT: "http" }),
    new UsageError('Invalid RELAIS_DEV_CLUSTER_PORT "http": expected an integer from 0 to 65535'),
  );
  assert.throws(() => parseOptions(["--colour"], {}), UsageError);
});
