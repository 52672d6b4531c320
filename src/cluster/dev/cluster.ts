/**
 * `deno task cluster`: cluster mode on one machine, to try it. It starts a Redis
 * (`redis-server` from the PATH, its data in `data/cluster/redis`, every write fsynced
 * before it is acknowledged), or uses `REDIS_URL` when that is set; then relais nodes in
 * cluster mode on loopback ports, each a child process running the command of
 * `deno task start`; then a round-robin TCP proxy in front of them, and prints how to try
 * it through the proxy. The nodes share one JWT secret and one service key (generated
 * unless set), so a token or key works whichever node a connection lands on.
 *
 * Ctrl-C (SIGINT, SIGTERM or SIGHUP) stops the proxy, the nodes, then Redis, and exits
 * with 0. When any child ends on its own, the others are stopped the same way and the
 * exit code is 1. The children run in sessions of their own, so a Ctrl-C reaches them
 * only through this launcher, in that order.
 *
 * Flags, each with an environment variable (the flag wins); a port of 0 means any free
 * port:
 *
 * | flag           | variable                        | default        |
 * | -------------- | ------------------------------- | -------------- |
 * | `--port`       | `RELAIS_DEV_CLUSTER_PORT`       | `8080` (proxy) |
 * | `--nodes`      | `RELAIS_DEV_CLUSTER_NODES`      | `3`            |
 * | `--node-port`  | `RELAIS_DEV_CLUSTER_NODE_PORT`  | `8081` (first node; the others follow) |
 * | `--redis-port` | `RELAIS_DEV_CLUSTER_REDIS_PORT` | `6390`         |
 * | `--data-dir`   | `RELAIS_DEV_CLUSTER_DATA_DIR`   | `data/cluster` |
 */

import { createUserAuth } from "../../auth/user_auth.ts";
import { loadConfig, randomSecret, SCOPES } from "../../config.ts";
import { printDemo } from "../../start.ts";
import { type Proxy, startProxy } from "./proxy.ts";
import { redisAnswers } from "./loopback.ts";
import { assignPorts, type ClusterOptions, HOST, parseOptions, UsageError } from "./options.ts";

/** The repository root: the nodes run from there, as `deno task start` does. */
const ROOT = new URL("../../../", import.meta.url);
/** The program started when `REDIS_URL` is unset. */
const REDIS_SERVER = "redis-server";
const START_TIMEOUT_MS = 120_000;
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
/** The line a node prints once it listens (see `start.ts`). */
const LISTENING = /relais listening on (http:\/\/\S+)/;

/** The arguments of `deno` in the `start` task of `deno.json`: what each node runs. */
async function startTaskArgs(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const task: unknown = config?.tasks?.start;
  const words = typeof task === "string" ? task.trim().split(/\s+/) : [];
  if (words[0] !== "deno" || words[1] !== "run" || words.some((w) => /[;&|<>`$]/.test(w))) {
    throw new Error(
      `Cannot start the nodes: expected the "start" task of deno.json to be "deno run … <entry>", got ${
        JSON.stringify(task)
      }`,
    );
  }
  return words.slice(1);
}

/** A child process whose output is printed line by line behind its name. */
interface Child {
  name: string;
  process: Deno.ChildProcess;
  /** Resolves once the output is all printed. */
  drained: Promise<void>;
}

function spawnChild(
  name: string,
  program: string,
  options: { args: string[]; env?: Record<string, string>; onLine?(line: string): void },
): Child {
  const process = new Deno.Command(program, {
    args: options.args,
    cwd: ROOT,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    // A session of its own: a Ctrl-C in the terminal reaches it through the launcher only.
    detached: true,
  }).spawn();
  const label = `${name.padEnd(5)}|`;
  const drained = Promise.all([
    printLines(process.stdout, (line) => {
      console.log(`${label} ${line}`);
      options.onLine?.(line);
    }),
    printLines(process.stderr, (line) => console.error(`${label} ${line}`)),
  ]).then(() => {});
  return { name, process, drained };
}

async function printLines(
  stream: ReadableStream<Uint8Array<ArrayBuffer>>,
  print: (line: string) => void,
) {
  let rest = "";
  try {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + text).split("\n");
      rest = lines.pop()!;
      for (const line of lines) print(line.replace(/\r$/, ""));
    }
  } catch {
    // The pipe broke: the process is gone.
  }
  if (rest) print(rest);
}

function describeStatus(status: Deno.CommandStatus): string {
  return status.signal ? `signal ${status.signal}` : `code ${status.code}`;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

/** `url` without its password, for printing. */
function redacted(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.href.replace(/\/$/, "");
  } catch {
    return url;
  }
}

/** Why the cluster stops: a signal (exit 0) or a failure (exit 1). */
interface StopReason {
  message: string;
  failed: boolean;
}

/** Thrown out of start-up once a stop was asked for. */
class Stopped extends Error {}

/**
 * Runs the cluster until a signal or the end of a child; resolves to the exit code.
 */
export async function runCluster(
  options: ClusterOptions,
  env: Record<string, string | undefined>,
): Promise<number> {
  const stop = Promise.withResolvers<StopReason>();
  let stopReason: StopReason | undefined;
  const requestStop = (reason: StopReason) => {
    stopReason ??= reason;
    stop.resolve(reason);
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT"]
    : ["SIGINT", "SIGTERM", "SIGHUP"];
  const handlers = signals.map((signal) => {
    const handler = () => requestStop({ message: `Received ${signal}`, failed: false });
    Deno.addSignalListener(signal, handler);
    return [signal, handler] as const;
  });
  const stopped = stop.promise.then(() => {
    throw new Stopped();
  });
  stopped.catch(() => {});
  /** `promise`, unless a stop comes first. */
  const unlessStopped = <T>(promise: Promise<T>) => Promise.race([promise, stopped]);

  const redisChildren: Child[] = [];
  const nodes: { child: Child; origin: string }[] = [];
  let proxy: Proxy | undefined;
  /** Watches a child: its end, unless asked for, stops the cluster. */
  const watch = (child: Child) =>
    child.process.status.then((status) =>
      requestStop({ message: `${child.name} exited (${describeStatus(status)})`, failed: true })
    );

  try {
    const externalRedis = env.REDIS_URL?.trim() || undefined;
    const ports = assignPorts(options, externalRedis === undefined);
    const proxyOrigin = `http://${HOST}:${ports.proxy}`;

    // Redis first: the nodes need it to start.
    let redisUrl: string;
    let redisLine: string;
    if (externalRedis) {
      redisUrl = externalRedis;
      redisLine = `${redacted(redisUrl)} (REDIS_URL)`;
    } else {
      const dir = `${options.dataDir.replace(/\/+$/, "")}/redis`;
      await Deno.mkdir(dir, { recursive: true });
      const absoluteDir = await Deno.realPath(dir);
      let child: Child;
      try {
        child = spawnChild("redis", REDIS_SERVER, {
          args: [
            ...["--port", String(ports.redis), "--bind", HOST, "--dir", absoluteDir],
            ...["--appendonly", "yes", "--appendfsync", "always", "--loglevel", "warning"],
          ],
        });
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) {
          throw new Error(
            `Cannot start "${REDIS_SERVER}": it is not on the PATH (install Redis 7, Valkey or KeyDB, or set REDIS_URL)`,
          );
        }
        throw e;
      }
      redisChildren.push(child);
      watch(child);
      const deadline = Date.now() + START_TIMEOUT_MS;
      while (!(await unlessStopped(redisAnswers(ports.redis!, HOST)))) {
        if (Date.now() > deadline) {
          throw new Error(`Redis did not answer on ${HOST}:${ports.redis} within 120 s`);
        }
        await unlessStopped(delay(50)); // poll interval of a bounded wait
      }
      redisUrl = `redis://${HOST}:${ports.redis}`;
      redisLine = `${redisUrl} (${REDIS_SERVER} pid ${child.process.pid}, data in ${dir})`;
    }

    // One secret and one service key for all the nodes, so any node accepts them.
    const shared: Record<string, string> = {
      RELAIS_CLUSTER: "redis",
      REDIS_URL: redisUrl,
      RELAIS_PUBLIC_URL: env.RELAIS_PUBLIC_URL || proxyOrigin,
      RELAIS_SERVICE_KEYS: env.RELAIS_SERVICE_KEYS ||
        `dev:dev_${randomSecret(24)}:${SCOPES.join("+")}`,
    };
    const jwtSecret = env.RELAIS_JWT_SECRET || (env.RELAIS_JWKS_URL ? "" : randomSecret(32));
    if (jwtSecret) shared.RELAIS_JWT_SECRET = jwtSecret;
    // Read before the nodes start: a bad configuration is reported once, here.
    const config = loadConfig({ ...env, ...shared, HOST, PORT: String(ports.proxy) });

    const args = await startTaskArgs();
    for (const [i, port] of ports.nodes.entries()) {
      const name = `n${i + 1}`;
      const listening = Promise.withResolvers<string>();
      const child = spawnChild(name, Deno.execPath(), {
        args,
        env: { ...shared, HOST, PORT: String(port), RELAIS_NODE_ID: name },
        onLine(line) {
          const origin = LISTENING.exec(line)?.[1];
          if (origin) listening.resolve(origin);
        },
      });
      watch(child);
      const timer = Promise.withResolvers<never>();
      const timeout = setTimeout(
        () => timer.reject(new Error(`Node ${name} did not listen within 120 s`)),
        START_TIMEOUT_MS,
      );
      try {
        nodes.push({
          child,
          origin: await unlessStopped(Promise.race([listening.promise, timer.promise])),
        });
      } finally {
        clearTimeout(timeout);
      }
    }

    await waitReady(nodes, unlessStopped);
    proxy = startProxy({
      hostname: HOST,
      port: ports.proxy,
      backends: ports.nodes.map((port) => ({ hostname: HOST, port })),
    });

    const width = Math.max(5, ...nodes.map((n) => n.child.name.length));
    console.log(
      [
        "",
        `relais cluster: ${nodes.length} nodes in cluster mode on one Redis, behind a round-robin proxy`,
        `  ${"redis".padEnd(width)}  ${redisLine}`,
        ...nodes.map(({ child, origin }) =>
          `  ${child.name.padEnd(width)}  ${origin} (pid ${child.process.pid})`
        ),
        `  ${"proxy".padEnd(width)}  ${proxyOrigin} → ${nodes.map((n) => n.child.name).join(", ")}`,
        "Each new connection to the proxy goes to the next node; Ctrl-C stops them all.",
        `relais cluster listening on ${proxyOrigin}`,
      ].join("\n"),
    );
    if (config.env === "development" && config.auth.jwtSecret) {
      const auth = createUserAuth(config.auth);
      await printDemo(config, proxyOrigin, (sub) => auth.signDevToken(sub, { ttlSeconds: 86_400 }));
    }
    await stop.promise;
  } catch (e) {
    if (!(e instanceof Stopped)) requestStop({ message: (e as Error).message, failed: true });
  } finally {
    for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
    const reason = stopReason!;
    console.error(`cluster: ${reason.message}; stopping`);
    await proxy?.close();
    // The nodes before Redis, so that they close their connections to it cleanly.
    await Promise.all(nodes.map(({ child }) => stopChild(child, "SIGINT")));
    await Promise.all(redisChildren.map((child) => stopChild(child, "SIGTERM")));
  }
  // Output still in the pipes is printed; a grandchild holding a pipe does not hold the exit.
  const all = [...nodes.map((n) => n.child), ...redisChildren];
  const done = new AbortController();
  await Promise.race([Promise.all(all.map((c) => c.drained)), delay(1000, done.signal)]);
  done.abort();
  console.error("cluster: stopped");
  return stopReason?.failed === false ? 0 : 1;
}

/** Waits until every node answers `GET /readyz` with 200 (the store answers). */
async function waitReady(
  nodes: { child: Child; origin: string }[],
  unlessStopped: <T>(promise: Promise<T>) => Promise<T>,
): Promise<void> {
  const client = Deno.createHttpClient({});
  try {
    for (const { child, origin } of nodes) {
      const deadline = Date.now() + READY_TIMEOUT_MS;
      let last = "no answer";
      for (;;) {
        try {
          const res = await unlessStopped(fetch(`${origin}/readyz`, { client }));
          await res.body?.cancel();
          if (res.status === 200) break;
          last = `status ${res.status}`;
        } catch (e) {
          if (e instanceof Stopped) throw e;
          last = (e as Error).message;
        }
        if (Date.now() > deadline) {
          throw new Error(`Node ${child.name} is not ready after 30 s: GET /readyz gave ${last}`);
        }
        await unlessStopped(delay(100)); // poll interval of a bounded wait
      }
    }
  } finally {
    client.close();
  }
}

/** Sends `signal` to `child` and waits for its end; kills it when it takes too long. */
async function stopChild(child: Child, signal: Deno.Signal): Promise<void> {
  try {
    child.process.kill(signal);
  } catch {
    // It has already ended.
  }
  const timeout = new AbortController();
  const ended = await Promise.race([
    child.process.status.then(() => true),
    delay(STOP_TIMEOUT_MS, timeout.signal).then(() => false),
  ]);
  timeout.abort();
  if (ended) return;
  console.error(`cluster: ${child.name} did not stop within 10 s; killing it`);
  try {
    child.process.kill("SIGKILL");
  } catch {
    // It ended meanwhile.
  }
  await child.process.status;
}

if (import.meta.main) {
  let code: number;
  try {
    code = await runCluster(parseOptions(Deno.args, Deno.env.toObject()), Deno.env.toObject());
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`cluster: ${e.message}`);
    code = 2;
  }
  Deno.exit(code);
}
