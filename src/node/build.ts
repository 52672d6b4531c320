/**
 * Builds the Node.js bundle of relais when it is stale: `src/node/main.ts` and everything
 * it imports as one ES module (`deno bundle --platform node`), next to a `node_modules`
 * holding the one package that cannot be bundled (`@deno/kv`, a native addon), installed
 * with npm at the version `import_map.json` pins. Run it as a script (it prints the
 * bundle's path; `--no-install` skips npm) or call {@linkcode buildNode}.
 */

import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));

/** The folder of the Node build (git-ignored). */
export const NODE_DIST = join(root, "dist", "node");
/** The bundle `node` runs. */
export const NODE_BUNDLE = join(NODE_DIST, "relais.mjs");

/** Packages left out of the bundle and installed beside it. */
const EXTERNAL = ["@deno/kv"];
/** What the bundle is built from: a change to any of them makes it stale. */
const INPUTS = ["src", "actors", "routes", "import_map.json", "deno.json", "deno.lock"];

/** The newest modification time under `path` (a file or a folder), in ms. */
async function newest(path: string): Promise<number> {
  const info = await Deno.stat(path).catch(() => undefined);
  if (!info) return 0;
  if (!info.isDirectory) return info.mtime?.getTime() ?? 0;
  let max = info.mtime?.getTime() ?? 0;
  for await (const entry of Deno.readDir(path)) {
    max = Math.max(max, await newest(join(path, entry.name)));
  }
  return max;
}

/** The `package.json` of the build: the external packages at their pinned versions. */
async function packageJson(): Promise<string> {
  const map = JSON.parse(await Deno.readTextFile(join(root, "import_map.json"))) as {
    imports: Record<string, string>;
  };
  const dependencies: Record<string, string> = {};
  for (const name of EXTERNAL) {
    const version = /^npm:(?:@[^/@]+\/)?[^/@]+@([^/]+)$/.exec(map.imports[name] ?? "")?.[1];
    if (!version) throw new Error(`import_map.json pins no version of "${name}"`);
    dependencies[name] = version;
  }
  const pkg = { name: "relais-node", private: true, type: "module", dependencies };
  return `${JSON.stringify(pkg, null, 2)}\n`;
}

async function run(cmd: string, args: string[], cwd: string): Promise<void> {
  const { code, stderr } = await new Deno.Command(cmd, {
    args,
    cwd,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(
      `"${[cmd, ...args].join(" ")}" failed (exit ${code}): ${new TextDecoder().decode(stderr)}`,
    );
  }
}

/** Whether `node_modules` holds every external package at the version `pkg` names. */
async function installed(pkg: string): Promise<boolean> {
  const wanted = (JSON.parse(pkg) as { dependencies: Record<string, string> }).dependencies;
  for (const [name, version] of Object.entries(wanted)) {
    const path = join(NODE_DIST, "node_modules", name, "package.json");
    const text = await Deno.readTextFile(path).catch(() => "{}");
    if ((JSON.parse(text) as { version?: string }).version !== version) return false;
  }
  return true;
}

/**
 * Makes `dist/node` current: installs the external packages when missing and rebuilds the
 * bundle when a source is newer. Returns the bundle's path.
 */
export async function buildNode(
  options: { log?: (line: string) => void; install?: boolean } = {},
): Promise<string> {
  const log = options.log ?? (() => {});
  await Deno.mkdir(NODE_DIST, { recursive: true });

  const pkg = await packageJson();
  const pkgPath = join(NODE_DIST, "package.json");
  if ((await Deno.readTextFile(pkgPath).catch(() => "")) !== pkg) {
    await Deno.writeTextFile(pkgPath, pkg);
  }
  if (options.install !== false && !(await installed(pkg))) {
    log("Installing the native packages of the Node build (npm install)");
    await run("npm", [
      "install",
      "--omit=dev",
      "--no-audit",
      "--no-fund",
      "--no-package-lock",
      "--loglevel=error",
    ], NODE_DIST);
  }

  const built = (await Deno.stat(NODE_BUNDLE).catch(() => undefined))?.mtime?.getTime() ?? 0;
  const startedAt = new Date();
  let sources = 0;
  for (const input of INPUTS) sources = Math.max(sources, await newest(join(root, input)));
  if (built > sources) return NODE_BUNDLE;

  log(`Bundling relais for Node into ${relative(root, NODE_BUNDLE)}`);
  // Written aside then renamed: a concurrent reader sees the old bundle or the new one.
  const partial = join(dirname(NODE_BUNDLE), `relais.${crypto.randomUUID()}.part.mjs`);
  try {
    await run(Deno.execPath(), [
      "bundle",
      "--quiet",
      "--platform",
      "node",
      ...EXTERNAL.flatMap((name) => ["--external", name]),
      "--output",
      partial,
      "src/node/main.ts",
    ], root);
    // Dated when the build started: a source saved during the build makes it stale.
    await Deno.utime(partial, startedAt, startedAt);
    await Deno.rename(partial, NODE_BUNDLE);
  } finally {
    await Deno.remove(partial).catch(() => {});
  }
  return NODE_BUNDLE;
}

if (import.meta.main) {
  try {
    // `--no-install`: the bundle and its package.json only (an image installs with npm).
    const install = !Deno.args.includes("--no-install");
    console.log(await buildNode({ log: (line) => console.error(line), install }));
  } catch (e) {
    console.error(`relais: cannot build the Node bundle: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
