/**
 * Child processes of the harness: every one runs under `timeout -s KILL`, so none outlives
 * the harness's deadline even if the harness itself is killed, and all are killed on exit.
 */

import { WorkerClient } from "./_rpc.ts";

/** A child process started by the harness. */
export interface Child {
  name: string;
  /** The real process (not the `timeout` wrapper): the one whose memory is read. */
  pid: number;
  process: Deno.ChildProcess;
  /**
   * The first lines it logged at error level (relais's JSON lines, `"level":"ERROR"`), kept
   * while its output is drained after its listening line, so that a scenario that sees a
   * server error can report what the server said.
   */
  errorLines: string[];
  /** Kills it (and its wrapper) and waits for the exit. */
  stop(): Promise<void>;
}

/** Error lines a child keeps at most. */
const ERROR_LINES = 10;

const children = new Set<Child>();
let deadlineAt = Date.now() + 15 * 60_000;

/** Where relais servers write their CPU profiles (`--cpu-prof`), if anywhere. */
let profileDir: string | undefined;

/** Makes every relais server started from now on write a CPU profile into `dir`. */
export function setCpuProfileDir(dir: string): void {
  profileDir = dir;
}

/** The folder of the CPU profiles, when they are asked for. */
export function cpuProfileDir(): string | undefined {
  return profileDir;
}

/** Sets the wall-clock time after which every child is killed by its wrapper. */
export function setChildDeadline(at: number): void {
  deadlineAt = at;
}

async function innerPid(wrapper: number): Promise<number> {
  // `timeout` forks its command: the real process is its only child.
  for (let i = 0; i < 200; i++) {
    try {
      const text = await Deno.readTextFile(`/proc/${wrapper}/task/${wrapper}/children`);
      const pid = Number(text.trim().split(/\s+/)[0]);
      if (pid > 0) return pid;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`Cannot find the process started by wrapper ${wrapper}`);
}

function killPid(pid: number, signal: Deno.Signal) {
  try {
    Deno.kill(pid, signal);
  } catch { /* already gone */ }
}

/** Starts `exe args` under `timeout -s KILL` with the remaining time before the deadline. */
export async function spawnChild(
  name: string,
  exe: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; stdout?: "piped" | "null" } = {},
): Promise<Child> {
  const seconds = Math.max(5, Math.ceil((deadlineAt - Date.now()) / 1000) + 5);
  const process = new Deno.Command("timeout", {
    args: ["-s", "KILL", String(seconds), exe, ...args],
    env: options.env,
    cwd: options.cwd,
    stdin: "piped",
    stdout: options.stdout ?? "piped",
    stderr: "inherit",
  }).spawn();
  const pid = await innerPid(process.pid);
  const child: Child = {
    name,
    pid,
    process,
    errorLines: [],
    async stop() {
      children.delete(child);
      // A profiled server writes its profile on a clean exit: asked first, killed after.
      if (profileDir) {
        killPid(pid, "SIGTERM");
        const exited = process.status.then(() => true);
        await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      }
      killPid(pid, "SIGKILL");
      killPid(process.pid, "SIGKILL");
      await process.status;
    },
  };
  children.add(child);
  process.status.then(() => children.delete(child));
  return child;
}

/** Kills every child still running. */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...children].map((c) => c.stop()));
}

/** Kills every child synchronously (for the exit path, where nothing can be awaited). */
export function killAllChildrenNow(): void {
  for (const child of children) {
    killPid(child.pid, "SIGKILL");
    killPid(child.process.pid, "SIGKILL");
  }
}

/** Waits for a line matching `pattern` on a child's stdout, then keeps draining it. */
export async function waitForLine(
  child: Child,
  pattern: RegExp,
  timeoutMs = 30_000,
): Promise<RegExpExecArray> {
  const reader = child.process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`${child.name} printed no ${pattern} within ${timeoutMs} ms`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const result = await Promise.race([
      reader.read(),
      new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), left)),
    ]);
    clearTimeout(timer);
    if (result === "timeout") continue; // the loop's deadline check throws
    if (result.done) throw new Error(`${child.name} exited before printing ${pattern}`);
    buffer += result.value;
    const match = pattern.exec(buffer);
    if (match) {
      // Drained so the child never blocks on a full pipe; its error lines are kept.
      (async () => {
        let rest = buffer.slice(match.index + match[0].length);
        try {
          while (true) {
            const { value, done } = await reader.read();
            if (done) break;
            const lines = (rest + value).split("\n");
            rest = lines.pop() ?? "";
            for (const line of lines) {
              if (child.errorLines.length < ERROR_LINES && line.includes('"level":"ERROR"')) {
                child.errorLines.push(line.slice(0, 2000));
              }
            }
            if (rest.length > 100_000) rest = "";
          }
        } catch { /* closed */ }
      })();
      return match;
    }
    if (buffer.length > 100_000) buffer = buffer.slice(-10_000);
  }
}

/** Starts a worker (command server on stdin/stdout). */
export async function spawnWorker(
  name: string,
  exe: string,
  args: string[],
  env?: Record<string, string>,
): Promise<{ child: Child; rpc: WorkerClient }> {
  const child = await spawnChild(name, exe, args, { env });
  return { child, rpc: new WorkerClient(name, child.process) };
}

/** Resident memory of a process in bytes (`VmRSS` of `/proc/PID/status`). */
export async function readRss(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const match = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  if (!match) throw new Error(`No VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}

/** CPU time (user + system) of a process in seconds, from `/proc/PID/stat`. */
export async function readCpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 (utime, stime) are at 11 and 12 after the command name; 100 ticks/s.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * Waits until process `pid` uses less than 5 % of a core over 250 ms (at most `maxMs`):
 * work it deferred (or a backlog it is still draining) must not spill into the next
 * measurement.
 */
export async function quiesce(pid: number, maxMs = 5000): Promise<void> {
  const deadline = Date.now() + maxMs;
  let last = await readCpuSeconds(pid);
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    const cpu = await readCpuSeconds(pid);
    if (cpu - last < 0.0125) return;
    last = cpu;
  }
}
