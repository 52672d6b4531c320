/**
 * What a Redis URL names: one server (`redis://`, `rediss://`), or a Redis Cluster
 * (`redis+cluster://`, `rediss+cluster://`) given by one or more seed nodes separated by
 * commas, from which the client discovers the whole cluster:
 *
 * ```text
 * redis+cluster://[[username]:password@]host1:port1[,host2:port2,...]
 * ```
 *
 * A seed without a port is on 6379; an IPv6 seed is written in brackets
 * (`[::1]:7000`); the user name and password are percent-encoded, as in any URL, and
 * apply to every node. A cluster has one database, so the URL has no path but `/`, and
 * no query.
 *
 * Plain Web APIs only: the configuration checks `REDIS_URL` with it before any
 * connection is made.
 */

/** One node of a cluster, as a seed to discover the cluster from. */
export interface RedisSeed {
  host: string;
  port: number;
}

/** What a Redis URL names. */
export type RedisTarget =
  | { kind: "server"; url: string }
  | {
    kind: "cluster";
    seeds: RedisSeed[];
    username?: string;
    password?: string;
    /** `rediss+cluster://`: every node is reached over TLS. */
    tls: boolean;
  };

const SERVER_SCHEMES = new Set(["redis:", "rediss:"]);

/** What is wrong with a Redis URL, in a message that never quotes the URL itself. */
class RedisUrlError extends TypeError {
  constructor(readonly problem: string) {
    super(`Invalid Redis URL: ${problem}`);
  }
}
const CLUSTER_SCHEME = /^(rediss?)\+cluster:\/\/(.*)$/i;

function parseSeed(text: string): RedisSeed {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^\s:/?#@\[\]]+)(?::(\d{1,5}))?$/.exec(text);
  const port = match?.[2] === undefined ? 6379 : Number(match[2]);
  if (!match || port < 1 || port > 65535) {
    throw new RedisUrlError(`bad cluster node "${text}"`);
  }
  const host = match[1].startsWith("[") ? match[1].slice(1, -1) : match[1];
  return { host, port };
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new RedisUrlError("bad percent-encoding in the credentials");
  }
}

/**
 * Reads `url`: a server for `redis://` and `rediss://`, a cluster and its seed nodes for
 * `redis+cluster://` and `rediss+cluster://`; throws a `TypeError` naming what is wrong
 * otherwise (never quoting the URL, which may hold a password).
 */
export function parseRedisUrl(url: string): RedisTarget {
  const cluster = CLUSTER_SCHEME.exec(url);
  if (!cluster) {
    if (URL.canParse(url) && SERVER_SCHEMES.has(new URL(url).protocol)) {
      return { kind: "server", url };
    }
    throw new RedisUrlError(
      'expected a URL starting with "redis://", "rediss://", "redis+cluster://" or "rediss+cluster://"',
    );
  }
  let rest = cluster[2];
  if (/[?#]/.test(rest)) {
    throw new RedisUrlError("a cluster URL takes no query");
  }
  if (rest.endsWith("/")) rest = rest.slice(0, -1);
  if (rest.includes("/")) {
    throw new RedisUrlError("a cluster URL has no database path");
  }
  const at = rest.lastIndexOf("@");
  const userinfo = at === -1 ? undefined : rest.slice(0, at);
  const hosts = at === -1 ? rest : rest.slice(at + 1);
  if (hosts === "") throw new RedisUrlError("a cluster URL names no node");
  const seeds = hosts.split(",").map((seed) => parseSeed(seed.trim()));
  const target: RedisTarget = {
    kind: "cluster",
    seeds,
    tls: cluster[1].toLowerCase() === "rediss",
  };
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(":");
    const username = decode(colon === -1 ? userinfo : userinfo.slice(0, colon));
    if (username !== "") target.username = username;
    if (colon !== -1) target.password = decode(userinfo.slice(colon + 1));
  }
  return target;
}

/**
 * What is wrong with `url` as a Redis URL {@linkcode parseRedisUrl} reads (e.g.
 * `a cluster URL has no database path`), or `undefined` when nothing is.
 */
export function redisUrlProblem(url: string): string | undefined {
  try {
    parseRedisUrl(url);
    return undefined;
  } catch (error) {
    if (error instanceof RedisUrlError) return error.problem;
    throw error;
  }
}
