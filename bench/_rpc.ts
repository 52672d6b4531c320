/**
 * JSON-lines commands between the harness and its worker processes (load generators and
 * the publisher): one request per line on the worker's stdin, one reply per line on its
 * stdout. A worker exits when its stdin closes, so it never outlives the harness.
 */

/** A command handler of a worker. */
// deno-lint-ignore no-explicit-any
export type Handler = (args: any) => Promise<unknown> | unknown;

/** The clock every process of the bench shares: wall-clock milliseconds, sub-ms precise. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** Serves commands on stdin until it closes, then exits the process. */
export async function serveCommands(handlers: Record<string, Handler>): Promise<never> {
  const encoder = new TextEncoder();
  const write = (value: unknown) => {
    const bytes = encoder.encode(JSON.stringify(value) + "\n");
    // Replies are small and rare: a synchronous write keeps them whole and in order.
    let offset = 0;
    while (offset < bytes.length) offset += Deno.stdout.writeSync(bytes.subarray(offset));
  };
  let buffer = "";
  const decoder = new TextDecoder();
  for await (const chunk of Deno.stdin.readable) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (!line.trim()) continue;
      const { id, cmd, args } = JSON.parse(line) as { id: number; cmd: string; args: unknown };
      const handler = handlers[cmd];
      Promise.resolve()
        .then(() => {
          if (!handler) throw new Error(`Unknown command "${cmd}"`);
          return handler(args);
        })
        .then(
          (result) => write({ id, ok: true, result }),
          (error) => write({ id, ok: false, error: String(error?.stack ?? error) }),
        );
    }
  }
  Deno.exit(0);
}

/** The harness's side of a worker. */
export class WorkerClient {
  #next = 1;
  #waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #encoder = new TextEncoder();

  constructor(readonly name: string, child: Deno.ChildProcess) {
    this.#writer = child.stdin.getWriter();
    this.#read(child.stdout);
  }

  async #read(stdout: ReadableStream<Uint8Array>) {
    let buffer = "";
    try {
      const decoder = new TextDecoder();
      for await (const chunk of stdout) {
        buffer += decoder.decode(chunk, { stream: true });
        let newline: number;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (!line.startsWith("{")) continue;
          const reply = JSON.parse(line) as {
            id: number;
            ok: boolean;
            result?: unknown;
            error?: string;
          };
          const waiter = this.#waiting.get(reply.id);
          this.#waiting.delete(reply.id);
          if (reply.ok) waiter?.resolve(reply.result);
          else waiter?.reject(new Error(`${this.name}: ${reply.error}`));
        }
      }
    } catch { /* the worker is gone */ }
    for (const waiter of this.#waiting.values()) {
      waiter.reject(new Error(`${this.name} exited`));
    }
    this.#waiting.clear();
  }

  /** Sends a command; rejects after `timeoutMs` or when the worker exits. */
  // deno-lint-ignore no-explicit-any
  call<T = any>(cmd: string, args: unknown = {}, timeoutMs = 60_000): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new Error(`${this.name}: "${cmd}" took more than ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.#writer.write(this.#encoder.encode(JSON.stringify({ id, cmd, args }) + "\n"))
        .catch((e) => {
          clearTimeout(timer);
          this.#waiting.delete(id);
          reject(new Error(`${this.name}: cannot send "${cmd}": ${e}`));
        });
    });
  }

  /** Closes the worker's stdin, which ends it. */
  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
  }
}
