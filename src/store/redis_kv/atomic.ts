/** The atomic operation of the Redis KV: checks and mutations packed into one script run. */

import { Buffer } from "node:buffer";
import { REDIS_KV_LIMITS } from "../kv/limits.ts";
import { ByteWriter, encodeKeyInto } from "./key_codec.ts";
import { type Link, script, type Space } from "./link.ts";
import { COMMIT_SCRIPT } from "./scripts.ts";
import { encodeValueInto, isKvU64, u64Operand } from "./value_codec.ts";

// The limits the database declares (`kvLimitsOf`), enforced here.
const MAX_WRITE_KEY_BYTES = REDIS_KV_LIMITS.writeKeyBytes;
const MAX_READ_KEY_BYTES = REDIS_KV_LIMITS.readKeyBytes;
const MAX_VALUE_BYTES = REDIS_KV_LIMITS.valueBytes;
const MAX_CHECKS = REDIS_KV_LIMITS.checks;
const MAX_MUTATIONS = REDIS_KV_LIMITS.mutations;
const MAX_TOTAL_KEY_BYTES = REDIS_KV_LIMITS.totalKeyBytes;
const MAX_TOTAL_BYTES = REDIS_KV_LIMITS.totalBytes;

const runCommit = script(COMMIT_SCRIPT);

type Mutation =
  | { type: "set"; key: Deno.KvKey; value: unknown; expireIn?: number }
  | { type: "delete"; key: Deno.KvKey }
  | { type: "sum" | "min" | "max"; key: Deno.KvKey; value: bigint };

/** Each mutation's one-byte kind in a packed commit (see `COMMIT_SCRIPT`). */
const MUTATION_KINDS: Record<Mutation["type"], number> = {
  set: 0x73, // "s"
  delete: 0x64, // "d"
  sum: 0x2b, // "+"
  min: 0x3c, // "<"
  max: 0x3e, // ">"
};

/** An atomic operation: checks and mutations, committed by one script run. */
export class RedisAtomicOperation {
  #checks: Deno.AtomicCheck[] = [];
  #mutations: Mutation[] = [];

  constructor(readonly link: Link, readonly space: Space) {}

  check(...checks: Deno.AtomicCheck[]): this {
    this.#checks.push(...checks);
    return this;
  }

  set(key: Deno.KvKey, value: unknown, options?: { expireIn?: number }): this {
    this.#mutations.push({ type: "set", key, value, expireIn: options?.expireIn });
    return this;
  }

  delete(key: Deno.KvKey): this {
    this.#mutations.push({ type: "delete", key });
    return this;
  }

  sum(key: Deno.KvKey, n: bigint): this {
    this.#mutations.push({ type: "sum", key, value: n });
    return this;
  }

  min(key: Deno.KvKey, n: bigint): this {
    this.#mutations.push({ type: "min", key, value: n });
    return this;
  }

  max(key: Deno.KvKey, n: bigint): this {
    this.#mutations.push({ type: "max", key, value: n });
    return this;
  }

  mutate(...mutations: Deno.KvMutation[]): this {
    for (const m of mutations) {
      if (m.type === "set") {
        this.set(m.key, m.value, m.expireIn === undefined ? undefined : { expireIn: m.expireIn });
      } else if (m.type === "delete") this.delete(m.key);
      else if (m.type === "sum" || m.type === "min" || m.type === "max") {
        this.#mutations.push({ type: m.type, key: m.key, value: u64Value(m.value) });
      } else throw new TypeError(`Unsupported mutation "${(m as { type: string }).type}"`);
    }
    return this;
  }

  enqueue(): this {
    throw new TypeError("The Redis KV has no queue");
  }

  async commit(): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
    if (this.#checks.length > MAX_CHECKS) {
      throw new TypeError(`Too many checks (max ${MAX_CHECKS})`);
    }
    if (this.#mutations.length > MAX_MUTATIONS) {
      throw new TypeError(`Too many mutations (max ${MAX_MUTATIONS})`);
    }
    // The commit packed in one argument (see `COMMIT_SCRIPT`), keys encoded in place.
    const w = new ByteWriter(4096);
    let keyBytes = 0;
    let totalBytes = 0;
    const key = (k: Deno.KvKey, max: number) => {
      const at = w.holdU32();
      encodeKeyInto(w, k);
      const length = w.length - at - 4;
      if (length > max) {
        throw new TypeError(`Key too large for write (max ${MAX_WRITE_KEY_BYTES} bytes)`);
      }
      w.patchU32(at, length);
      keyBytes += length;
    };
    w.u32(this.#checks.length);
    for (const check of this.#checks) {
      key(check.key, MAX_READ_KEY_BYTES);
      const versionstamp = check.versionstamp ?? "";
      w.u32(versionstamp.length);
      w.latin1(versionstamp);
    }
    for (const m of this.#mutations) {
      w.byte(MUTATION_KINDS[m.type]);
      key(m.key, MAX_WRITE_KEY_BYTES);
      if (m.type === "set") {
        const at = w.holdU32();
        encodeValueInto(w, m.value);
        const length = w.length - at - 4;
        if (length - 1 > MAX_VALUE_BYTES) {
          throw new TypeError(`Value too large (max ${MAX_VALUE_BYTES} bytes)`);
        }
        w.patchU32(at, length);
        totalBytes += length;
        if (m.expireIn === undefined) w.u32(0);
        else {
          const expireIn = String(Math.max(1, Math.ceil(m.expireIn)));
          w.u32(expireIn.length);
          w.latin1(expireIn);
        }
      } else if (m.type === "delete") {
        w.u32(0);
        w.u32(0);
      } else {
        const operand = u64Operand(m.value);
        w.u32(operand.length);
        w.latin1(operand);
        w.u32(0);
      }
    }
    if (keyBytes > MAX_TOTAL_KEY_BYTES) {
      throw new TypeError(`Total key size too large (max ${MAX_TOTAL_KEY_BYTES} bytes)`);
    }
    if (keyBytes + totalBytes > MAX_TOTAL_BYTES) {
      throw new TypeError(`Total mutation size too large (max ${MAX_TOTAL_BYTES} bytes)`);
    }
    const packed = w.view();
    const reply = await runCommit(this.link, [this.space.counter, this.space.index], [
      this.space.valuePrefix,
      Buffer.from(packed.buffer, packed.byteOffset, packed.byteLength),
    ]);
    if (reply === null) return { ok: false };
    return { ok: true, versionstamp: (reply as Buffer).toString("latin1") };
  }
}

/** The number a `KvU64` operand holds; throws on anything else. */
function u64Value(value: unknown): bigint {
  if (!isKvU64(value)) throw new TypeError("Cannot sum, min or max: the value is not a KvU64");
  return value.value;
}
