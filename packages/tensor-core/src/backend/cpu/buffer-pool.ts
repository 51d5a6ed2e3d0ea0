/**
 * Size-bucketed pool of typed-array buffers for kernel outputs and scratch.
 *
 * `acquire(dtype, n)` returns a view of exactly `n` elements over a buffer whose byte size is the next power of two
 * (at least 64 bytes). Buffers of `SHARED_MIN_BYTES` or more are `SharedArrayBuffer`s (when the runtime has them),
 * so the worker pool can hand them to threads without copying (`acquireShared` gives a shared one of any size). `acquire` does NOT zero the memory (a reused buffer
 * holds whatever its last user wrote); `acquireZeroed` does (and skips the fill for a fresh, already-zero buffer).
 * `release(arr)` puts the buffer back on its bucket's free list, unless that would exceed the cached-bytes limit,
 * in which case the buffer is left to the garbage collector. Releasing an array the pool did not create is a no-op
 * returning false; releasing one twice throws.
 *
 * The limit is sized from the machine: `LRC_POOL_LIMIT` when set (bytes, "6GB", "512MiB" or "30%" of the memory),
 * else half of the memory: the cgroup's limit when one is set below `os.totalmem()` (a container), else
 * `os.totalmem()` (1 GiB where neither is known, e.g. a browser); `setBufferPoolLimit` changes it (the lrc CLI's
 * `--pool-limit`).
 *
 * Why: a fresh page-touched 16 MB Float32Array costs tens of milliseconds on a small VM; reuse costs ~nothing.
 * The limit is high on purpose: in a training loop every cached buffer was live at some point of a step, so the
 * cache converges to the step's working set and nothing is allocated in steady state. A limit below the working
 * set makes every step drop buffers and allocate fresh ones; SharedArrayBuffers are reclaimed late, so with the old
 * 512 MiB default the LRC distill benchmark step allocated 195 MiB per step and its RSS climbed past 2 GB
 * (870 MiB flat with the cache holding the working set).
 */

export type PoolDtype = "float32" | "float64" | "int32";
export type PoolArray = Float32Array | Float64Array | Int32Array;

/** Buffers at least this large are SharedArrayBuffer-backed. */
export const SHARED_MIN_BYTES = 1 << 16;
const MIN_BUCKET_BYTES = 64;

const hasShared = typeof SharedArrayBuffer === "function";
/** Free lists keyed by bucket bytes; shared buffers use the negated size as key. */
const freeLists = new Map<number, ArrayBufferLike[]>();
const owned = new WeakSet<ArrayBufferLike>();
const idle = new WeakSet<ArrayBufferLike>();
let cachedBytes = 0;
/** Bytes of fresh (not reused) buffers handed out since the process started. */
let freshBytes = 0;

function elementBytes(dtype: PoolDtype): number {
  switch (dtype) {
    case "float32":
    case "int32":
      return 4;
    case "float64":
      return 8;
    default:
      throw new TypeError(`buffer-pool: unknown dtype ${String(dtype satisfies never)}`);
  }
}

function view(dtype: PoolDtype, buffer: ArrayBufferLike, n: number): PoolArray {
  switch (dtype) {
    case "float32":
      return new Float32Array(buffer, 0, n);
    case "float64":
      return new Float64Array(buffer, 0, n);
    case "int32":
      return new Int32Array(buffer, 0, n);
    default:
      throw new TypeError(`buffer-pool: unknown dtype ${String(dtype satisfies never)}`);
  }
}

/** Bytes of the buffer the pool allocates for a request of `bytes`: the next power of two, at least 64 (memory estimates count these). */
export function poolBucketBytes(bytes: number): number {
  let b = MIN_BUCKET_BYTES;
  while (b < bytes) b *= 2;
  return b;
}

function listKey(buffer: ArrayBufferLike): number {
  return hasShared && buffer instanceof SharedArrayBuffer ? -buffer.byteLength : buffer.byteLength;
}

function take(dtype: PoolDtype, n: number, forceShared: boolean): { arr: PoolArray; fresh: boolean } {
  if (!Number.isInteger(n) || n < 0) {
    throw new RangeError(`buffer-pool: element count must be a non-negative integer, got ${n}`);
  }
  const bytes = poolBucketBytes(n * elementBytes(dtype));
  const shared = hasShared && (forceShared || bytes >= SHARED_MIN_BYTES);
  const list = freeLists.get(shared ? -bytes : bytes);
  const reused = list !== undefined ? list.pop() : undefined;
  if (reused !== undefined) {
    idle.delete(reused);
    cachedBytes -= bytes;
    return { arr: view(dtype, reused, n), fresh: false };
  }
  const buffer: ArrayBufferLike = shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
  owned.add(buffer);
  freshBytes += bytes;
  return { arr: view(dtype, buffer, n), fresh: true };
}

/** A pooled array of `n` elements; contents are unspecified (not zeroed). */
export function acquire(dtype: "float32", n: number): Float32Array;
export function acquire(dtype: "float64", n: number): Float64Array;
export function acquire(dtype: "int32", n: number): Int32Array;
export function acquire(dtype: PoolDtype, n: number): PoolArray;
export function acquire(dtype: PoolDtype, n: number): PoolArray {
  return take(dtype, n, false).arr;
}

/**
 * Like `acquire`, but always SharedArrayBuffer-backed whatever the size (throws where the runtime has no
 * SharedArrayBuffer). Used for scratch handed to the worker pool.
 */
export function acquireShared(dtype: "float32", n: number): Float32Array;
export function acquireShared(dtype: "float64", n: number): Float64Array;
export function acquireShared(dtype: "int32", n: number): Int32Array;
export function acquireShared(dtype: PoolDtype, n: number): PoolArray;
export function acquireShared(dtype: PoolDtype, n: number): PoolArray {
  if (!hasShared) throw new Error("buffer-pool: acquireShared needs SharedArrayBuffer, which this runtime lacks");
  return take(dtype, n, true).arr;
}

/**
 * Scratch for a job that may run on the worker pool: SharedArrayBuffer-backed where the runtime has
 * SharedArrayBuffer (any size), else an ordinary pooled buffer (a browser page without cross-origin isolation,
 * where the pool is not used anyway).
 */
export function acquireForWorkers(dtype: "float64", n: number): Float64Array;
export function acquireForWorkers(dtype: "int32", n: number): Int32Array;
export function acquireForWorkers(dtype: PoolDtype, n: number): PoolArray;
export function acquireForWorkers(dtype: PoolDtype, n: number): PoolArray {
  return take(dtype, n, hasShared).arr;
}

/** A pooled array of `n` zeros. */
export function acquireZeroed(dtype: "float32", n: number): Float32Array;
export function acquireZeroed(dtype: "float64", n: number): Float64Array;
export function acquireZeroed(dtype: "int32", n: number): Int32Array;
export function acquireZeroed(dtype: PoolDtype, n: number): PoolArray;
export function acquireZeroed(dtype: PoolDtype, n: number): PoolArray {
  const { arr, fresh } = take(dtype, n, false);
  if (!fresh) arr.fill(0);
  return arr;
}

/**
 * Returns `arr`'s buffer to the pool. The caller must not use `arr` (or any other view of its buffer) afterwards.
 * Returns true when the pool took the buffer back (cached or dropped over the limit), false for a foreign array.
 */
export function release(arr: PoolArray | Uint16Array): boolean {
  const buffer = arr.buffer;
  if (!owned.has(buffer)) return false;
  if (idle.has(buffer)) {
    throw new Error("buffer-pool: release() called twice for the same buffer (it is already in the pool)");
  }
  const bytes = buffer.byteLength;
  if (cachedBytes + bytes > limitBytes) {
    owned.delete(buffer);
    return true;
  }
  const key = listKey(buffer);
  let list = freeLists.get(key);
  if (list === undefined) {
    list = [];
    freeLists.set(key, list);
  }
  list.push(buffer);
  idle.add(buffer);
  cachedBytes += bytes;
  return true;
}

/** True when `arr` lives in a SharedArrayBuffer (usable by the worker pool without a copy). */
export function isShared(arr: { buffer: ArrayBufferLike }): boolean {
  return hasShared && arr.buffer instanceof SharedArrayBuffer;
}

function builtin<T>(id: string): T | undefined {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  return proc?.getBuiltinModule?.(id) as T | undefined;
}

/** The machine's memory in bytes (Node's `os.totalmem()`), or null where there is no `os` module. */
function totalMemory(): number | null {
  const os = builtin<{ totalmem?: () => number }>("node:os");
  return typeof os?.totalmem === "function" ? os.totalmem() : null;
}

/**
 * The memory limit of this process's cgroup (a container's), read under `root`: cgroup v2's `memory.max`, else
 * cgroup v1's `memory/memory.limit_in_bytes`. Null when neither file is there (or readable, or holds a byte
 * count) or no limit is set: v2 writes "max"; v1 writes a huge number (about 2^63), which
 * memoryLimit treats as none by ignoring any limit at or above the machine's memory.
 */
export function cgroupMemoryLimit(root = "/sys/fs/cgroup"): { bytes: number; file: string } | null {
  const fs = builtin<{ readFileSync: (file: string, enc: "utf8") => string }>("node:fs");
  if (fs === undefined) return null;
  for (const file of [`${root}/memory.max`, `${root}/memory/memory.limit_in_bytes`]) {
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8").trim();
    } catch {
      continue;
    }
    if (text === "max") return null;
    if (/^\d+$/.test(text)) return { bytes: Number(text), file };
  }
  return null;
}

/**
 * The memory this process may use and where that figure comes from: the cgroup's limit (under `cgroupRoot`)
 * when one is set below the machine's memory, else `os.totalmem()`; null where neither is known (a browser).
 */
export function memoryLimit(opts: { cgroupRoot?: string; totalBytes?: number | null } = {}): { bytes: number; source: string } | null {
  const total = opts.totalBytes !== undefined ? opts.totalBytes : totalMemory();
  const cg = cgroupMemoryLimit(opts.cgroupRoot);
  if (cg !== null && (total === null || cg.bytes < total)) return { bytes: cg.bytes, source: `the cgroup memory limit (${cg.file})` };
  return total === null ? null : { bytes: total, source: "the machine's memory (os.totalmem())" };
}

/**
 * Share of the machine's memory the free lists may hold by default: at the Qwen2.5-0.5B shape (24 layers, batch
 * 4 x 256) one step releases at least 6 GiB (a quarter of a 24 GB machine), and a limit below a step's working set makes every
 * step allocate again.
 */
const DEFAULT_LIMIT_FRACTION = 0.5;

function defaultLimit(): { bytes: number; source: string } {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.["LRC_POOL_LIMIT"];
  if (env !== undefined && env !== "") return { bytes: parsePoolLimit(env, "LRC_POOL_LIMIT"), source: `LRC_POOL_LIMIT=${env}` };
  const mem = memoryLimit();
  return mem === null
    ? { bytes: 2 ** 30, source: "1 GiB (the memory size is unknown here)" }
    : { bytes: Math.floor(mem.bytes * DEFAULT_LIMIT_FRACTION), source: `half of ${mem.source}` };
}

const UNITS: Record<string, number> = { "": 1, B: 1, KB: 1e3, MB: 1e6, GB: 1e9, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30 };

/**
 * A pool limit in bytes from a byte count, a size ("6GB", "512MiB") or a percentage of the memory ("30%": of the
 * cgroup's limit when one is set, see memoryLimit); throws naming `source` (the flag or variable it came from) on
 * anything else.
 */
export function parsePoolLimit(raw: string, source: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(%|[KMG]i?B|B)?$/i.exec(raw.trim());
  let v = NaN;
  if (m !== null) {
    const unit = (m[2] ?? "").toUpperCase();
    if (unit === "%") {
      const total = memoryLimit()?.bytes ?? null;
      if (total === null) throw new RangeError(`${source}: a percentage needs the machine's memory size, which this runtime does not give; use a size such as 2GB`);
      v = Math.floor((total * Number(m[1])) / 100);
    } else v = Math.floor(Number(m[1]) * UNITS[unit]!);
  }
  if (!(v >= 0) || !Number.isFinite(v)) throw new RangeError(`${source}: expects a size such as 6GB, 512MiB, 30% (of the memory) or a byte count, got '${raw}'`);
  return v;
}

const initialLimit = defaultLimit();
let limitBytes = initialLimit.bytes;
let limitSource = initialLimit.source;

/**
 * Sets the most bytes the free lists may hold (evicting nothing already cached beyond it until cleared); `source`
 * says where the figure came from (bufferPoolStats reports it).
 */
export function setBufferPoolLimit(bytes: number, source = "setBufferPoolLimit"): void {
  if (!(bytes >= 0)) throw new RangeError(`buffer-pool: limit must be >= 0 bytes, got ${bytes}`);
  limitBytes = bytes;
  limitSource = source;
}

/** Drops every cached buffer. */
export function clearBufferPool(): void {
  for (const list of freeLists.values()) for (const buffer of list) idle.delete(buffer);
  freeLists.clear();
  cachedBytes = 0;
}

/**
 * Bytes currently cached in the free lists, the limit and where it came from, and the bytes of fresh buffers
 * allocated so far (a training loop in steady state should not grow it: every step's buffers come from the free
 * lists).
 */
export function bufferPoolStats(): { cachedBytes: number; limitBytes: number; limitSource: string; freshBytes: number } {
  return { cachedBytes, limitBytes, limitSource, freshBytes };
}
