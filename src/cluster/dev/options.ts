/** The launcher's options, from its flags and environment, and the ports they come to. */

import { parseArgs } from "node:util";
import { freePort } from "./loopback.ts";

/** Where everything listens: the loopback interface only. */
export const HOST = "127.0.0.1";

/** What the launcher starts. */
export interface ClusterOptions {
  /** The proxy's port. */
  port: number;
  /** How many nodes. */
  nodes: number;
  /** The first node's port; node i listens on `nodePort + i - 1`. */
  nodePort: number;
  /** The port of the Redis started here (unused with `REDIS_URL`). */
  redisPort: number;
  /** Where the Redis started here keeps its data (in `redis/` under it). */
  dataDir: string;
}

/** A flag or variable the launcher cannot use; the message is one line naming it. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

const SETTINGS = [
  { flag: "port", variable: "RELAIS_DEV_CLUSTER_PORT", fallback: "8080", min: 0, max: 65535 },
  { flag: "nodes", variable: "RELAIS_DEV_CLUSTER_NODES", fallback: "3", min: 1, max: 16 },
  {
    flag: "node-port",
    variable: "RELAIS_DEV_CLUSTER_NODE_PORT",
    fallback: "8081",
    min: 0,
    max: 65535,
  },
  {
    flag: "redis-port",
    variable: "RELAIS_DEV_CLUSTER_REDIS_PORT",
    fallback: "6390",
    min: 0,
    max: 65535,
  },
] as const;

/**
 * The options from the command line `args` and the environment `env` (a flag wins over
 * its variable, a variable over the default); throws a {@linkcode UsageError}.
 */
export function parseOptions(
  args: readonly string[],
  env: Record<string, string | undefined>,
): ClusterOptions {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        port: { type: "string" },
        nodes: { type: "string" },
        "node-port": { type: "string" },
        "redis-port": { type: "string" },
        "data-dir": { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new UsageError(
      `${(e as Error).message} (flags: --port, --nodes, --node-port, --redis-port, --data-dir)`,
    );
  }
  const numbers = new Map<string, number>();
  for (const { flag, variable, fallback, min, max } of SETTINGS) {
    const given = values[flag];
    const [text, from] = typeof given === "string"
      ? [given, `--${flag}`]
      : env[variable]?.trim()
      ? [env[variable]!.trim(), variable]
      : [fallback, `--${flag}`];
    const n = /^\d{1,6}$/.test(text) ? Number(text) : NaN;
    if (!(n >= min && n <= max)) {
      throw new UsageError(`Invalid ${from} "${text}": expected an integer from ${min} to ${max}`);
    }
    numbers.set(flag, n);
  }
  const options: ClusterOptions = {
    port: numbers.get("port")!,
    nodes: numbers.get("nodes")!,
    nodePort: numbers.get("node-port")!,
    redisPort: numbers.get("redis-port")!,
    dataDir: typeof values["data-dir"] === "string"
      ? values["data-dir"]
      : env.RELAIS_DEV_CLUSTER_DATA_DIR?.trim() || "data/cluster",
  };
  if (options.dataDir === "") throw new UsageError('Invalid --data-dir "": expected a folder');
  if (options.nodePort !== 0 && options.nodePort + options.nodes - 1 > 65535) {
    throw new UsageError(
      `Invalid --node-port "${options.nodePort}": ${options.nodes} nodes go past port 65535`,
    );
  }
  return options;
}

/**
 * The ports of the proxy, the nodes and Redis: the fixed ones as given (refusing one used
 * twice), each 0 replaced by a free port none of the others uses.
 */
export function assignPorts(options: ClusterOptions, withRedis: boolean) {
  const wanted: { name: string; port: number }[] = [
    { name: "--port", port: options.port },
    ...Array.from({ length: options.nodes }, (_, i) => ({
      name: `node n${i + 1}`,
      port: options.nodePort === 0 ? 0 : options.nodePort + i,
    })),
    ...(withRedis ? [{ name: "--redis-port", port: options.redisPort }] : []),
  ];
  const taken = new Map<number, string>();
  for (const { name, port } of wanted) {
    if (port === 0) continue;
    const other = taken.get(port);
    if (other) throw new UsageError(`Port "${port}" is given twice: to ${other} and ${name}`);
    taken.set(port, name);
  }
  const ports = wanted.map(({ name, port }) => {
    while (port === 0 || (taken.get(port) ?? name) !== name) port = freePort(HOST);
    taken.set(port, name);
    return port;
  });
  return {
    proxy: ports[0],
    nodes: ports.slice(1, 1 + options.nodes),
    redis: withRedis ? ports[1 + options.nodes] : undefined,
  };
}
