/**
 * The one place that instantiates the generated WebAssembly modules (gemm, attention, vector kernels): each
 * module imports its linear memory as `env.mem`. Used by the runtimes on the calling thread and in the pool's
 * workers alike.
 */

/** The slice of the WebAssembly JS API used here (the ES2022 lib the project compiles against lacks it). */
export interface WasmMemoryLike {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

export interface WasmApiLike {
  Memory: new (descriptor: { initial: number }) => WasmMemoryLike;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  validate(bytes: Uint8Array): boolean;
}

/** Bytes per WebAssembly memory page. */
export const PAGE = 65536;

/** The runtime's WebAssembly API, or undefined. */
export function wasmApi(): WasmApiLike | undefined {
  return (globalThis as unknown as { WebAssembly?: WasmApiLike }).WebAssembly;
}

/** A module instance with its own memory, and a float32 view of that memory kept current as it grows. */
export interface WasmInstance<E> {
  readonly memory: WasmMemoryLike;
  readonly exports: E;
  /** The memory as floats (replaced when the memory grows: read it after `ensure`). */
  heap: Float32Array;
  /** Grows the memory to at least `bytes` and refreshes `heap`. */
  ensure(bytes: number): void;
}

/**
 * Instantiates `bytes` over a new memory of `initialPages` pages; null when there are no bytes, no WebAssembly,
 * or the engine refuses the module (the callers then run their TypeScript paths).
 */
export function instantiate<E>(bytes: Uint8Array | null, initialPages: number): WasmInstance<E> | null {
  const api = wasmApi();
  if (bytes === null || api === undefined) return null;
  let memory: WasmMemoryLike, exports: E;
  try {
    memory = new api.Memory({ initial: initialPages });
    exports = new api.Instance(new api.Module(bytes), { env: { mem: memory } }).exports as unknown as E;
  } catch {
    return null;
  }
  const inst: WasmInstance<E> = {
    memory,
    exports,
    heap: new Float32Array(memory.buffer),
    ensure(n: number): void {
      const have = memory.buffer.byteLength;
      if (have < n) memory.grow(Math.ceil((n - have) / PAGE));
      if (inst.heap.buffer !== memory.buffer) inst.heap = new Float32Array(memory.buffer);
    },
  };
  return inst;
}
