/**
 * A real Redis Cluster for tests: three `redis-server --cluster-enabled yes` masters on
 * free loopback ports, each in a temporary folder of its own, joined with
 * `redis-cli --cluster create … --cluster-replicas 0`, ready once every node says
 * `cluster_state:ok` and knows the three. Its URL is the `redis+cluster://` form relais
 * reads, with every node as a seed.
 *
 * Without `redis-server` or `redis-cli` the tests that need it are skipped with one line
 * saying so, except in CI, where they run and fail (see `requirements.ts`).
 */

import { REDIS_SERVER } from "./redis.ts";
import { installed, skipUnless } from "./requirements.ts";

/** The cluster tool; `RELAIS_TEST_REDIS_CLI` names another one. */
export const REDIS_CLI: string = Deno.env.get("RELAIS_TEST_REDIS_CLI") || "redis-cli";

/** The `ignore` flag of a test that needs a Redis Cluster (see `skipUnless`). */
export function skipWithoutRedisCluster(): boolean {
  const missing = [REDIS_SERVER, REDIS_CLI].filter((program) => !installed(program));
  return skipUnless(missing.length === 0, {
    tests: "the Redis Cluster tests",
    missing: missing.map((p) => `"${p}"`).join(" and ") + " not installed",
    install: "apt-get install -y redis-server redis-tools",
  });
}

/** A running three-master Redis Cluster. */
export interface TestRedisCluster {
  /** `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`. */
  url: string;
  /** The masters' client ports. */
  ports: number[];
  /** Stops the servers and removes their folders. */
  stop(): Promise<void>;
  /** The same, at once and synchronously (for an `unload` handler). */
  kill(): void;
}

const MASTERS = 3;
const READY_WITHIN_MS = 20_000;

/** Whether `port` can be listened on now. */
function free(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

/**
 * A free port whose cluster bus port (the port + 10,000, which every Redis version
 * uses) is free too: picked below the kernel's ephemeral range's usual start, so the bus
 * port stays a valid port.
 */
function freeClusterPort(taken: Set<number>): number {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (taken.has(port) || taken.has(port + 10_000)) continue;
    if (free(port) && free(port + 10_000)) {
      taken.add(port);
      taken.add(port + 10_000);
      return port;
    }
  }
  throw new Error("No free pair of ports for a Redis Cluster node");
}

/** Runs `redis-cli` with `args`; its output, or an error with its output. */
async function cli(args: string[]): Promise<string> {
  const out = await new Deno.Command(REDIS_CLI, { args, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`"${REDIS_CLI} ${args.join(" ")}" failed: ${text}`);
  return text;
}

const info = (port: number) =>
  cli(["-h", "127.0.0.1", "-p", String(port), "cluster", "info"]).catch(() => "");

/** Waits, up to the deadline, until `check` holds. */
async function until(check: () => Promise<boolean>, deadline: number, what: string) {
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`The test Redis Cluster: ${what} within 20 s`);
    await new Promise((r) => setTimeout(r, 100)); // poll interval of a bounded wait
  }
}

/** Starts the three masters, joins them, and waits until the cluster serves every slot. */
export async function startRedisCluster(): Promise<TestRedisCluster> {
  const taken = new Set<number>();
  const ports = Array.from({ length: MASTERS }, () => freeClusterPort(taken));
  const dirs: string[] = [];
  const children: Deno.ChildProcess[] = [];

  const kill = () => {
    for (const child of children) {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    }
    for (const dir of dirs) {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch { /* already removed */ }
    }
  };
  const stop = async () => {
    for (const child of children) {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
    }
    await Promise.all(children.map((c) => c.status));
    await Promise.all(dirs.map((dir) => Deno.remove(dir, { recursive: true }).catch(() => {})));
  };

  try {
    for (const port of ports) {
      const dir = await Deno.makeTempDir({ prefix: "relais-redis-cluster-" });
      dirs.push(dir);
      children.push(
        new Deno.Command(REDIS_SERVER, {
          args: [
            "--port",
            String(port),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            `${dir}/nodes.conf`,
            "--cluster-node-timeout",
            "5000",
            "--dir",
            dir,
            "--save",
            "",
            "--appendonly",
            "no",
          ],
          stdout: "null",
          stderr: "null",
        }).spawn(),
      );
    }
    const deadline = Date.now() + READY_WITHIN_MS;
    for (const port of ports) {
      await until(async () => (await info(port)).includes("cluster_"), deadline, "a node answers");
    }
    await cli([
      "--cluster",
      "create",
      ...ports.map((p) => `127.0.0.1:${p}`),
      "--cluster-replicas",
      "0",
      "--cluster-yes",
    ]);
    for (const port of ports) {
      await until(
        async () => {
          const text = await info(port);
          return text.includes("cluster_state:ok") &&
            text.includes(`cluster_known_nodes:${MASTERS}`) &&
            text.includes("cluster_slots_ok:16384");
        },
        deadline,
        `node ${port} is not ok`,
      );
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(",")}`,
    ports,
    stop,
    kill,
  };
}
