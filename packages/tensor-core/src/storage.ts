// Reference-counted storage behind tensors. Views (reshape, detach) share a Storage; when the last tensor
// using it is disposed the buffer goes back to the pool, so a training step's intermediates are reused by
// the next step instead of being reallocated (a fresh, page-touched 16 MB Float32Array costs ~50 ms here).
//
// A Storage holds a host buffer, a device buffer (a GPU.js texture, see backend/gpujs), or both. When both
// are present they hold the same values. Reading values (`hostCopy`) downloads lazily and keeps the device
// copy; handing out the mutable host buffer (`Tensor.buf`) makes the host copy authoritative and frees the
// device copy, so in-place host writes can never be shadowed by a stale texture.

import type { DType, HalfDType, TypedArray } from "./dtype.js";
import { isHalf } from "./dtype.js";
import { acquire, acquireZeroed, release } from "./backend/cpu/buffer-pool.js";

/** A buffer owned by a device backend (a GPU.js pipeline texture or typed-array result). */
export interface DeviceBuffer {
  /** Writes the first `n` values into `out` (float32 on the device; converted to out's type). */
  download(out: TypedArray, n: number): void;
  /** Like download, for devices that read back only asynchronously (WebGPU); the others may call download. */
  downloadAsync(out: TypedArray, n: number): Promise<void>;
  /** Releases the device memory (texture.delete()). Called exactly once. */
  free(): void;
}

export class Storage {
  refs = 1;
  device: DeviceBuffer | null = null;
  /** The host values: a typed array of the tensor's dtype, or 16-bit bit patterns (a Uint16Array) for bfloat16 and float16. */
  constructor(public data: TypedArray | Uint16Array | null) {}
}

/** A buffer that the caller fully overwrites. */
export function allocDirty(dtype: DType, n: number): TypedArray {
  return acquire(computable("allocate", dtype), n);
}

/** A zero-filled buffer. */
export function allocZeros(dtype: DType, n: number): TypedArray {
  return acquireZeroed(computable("allocate", dtype), n);
}

/** dtype, unless it is a storage-only 16-bit dtype (then throws, naming `what`). */
export function computable(what: string, dtype: DType): Exclude<DType, HalfDType> {
  if (isHalf(dtype))
    throw new TypeError(`${what}: ${dtype} is a storage dtype for frozen weights (made with ${dtype}Tensor, zeros / full or astype("${dtype}")); compute in float32`);
  return dtype;
}

/** Downloads a device-only storage into a host buffer (kept alongside the device copy). */
export function syncHost(s: Storage, dtype: DType, n: number): TypedArray {
  if (s.data !== null) return s.data as TypedArray;
  const dev = s.device;
  if (dev === null) throw new Error("internal: syncHost on a released storage");
  const host = acquire(computable("syncHost", dtype), n);
  dev.download(host, n);
  s.data = host;
  return host;
}

/** Like syncHost, awaiting the device's asynchronous read (WebGPU); null when the storage was released meanwhile. */
export async function syncHostAsync(s: Storage, dtype: DType, n: number): Promise<TypedArray | null> {
  if (s.data !== null) return s.data as TypedArray;
  const dev = s.device;
  if (dev === null) throw new Error("internal: syncHostAsync on a released storage");
  const host = acquire(computable("syncHostAsync", dtype), n);
  try {
    await dev.downloadAsync(host, n);
  } catch (e) {
    release(host);
    throw e;
  }
  if (s.data !== null || s.device === null) {
    // read twice concurrently, or released while the read was in flight: keep what is there
    release(host);
    return s.data as TypedArray | null;
  }
  s.data = host;
  return host;
}

/** Makes the host copy the only copy (before a caller may write it in place). */
export function dropDevice(s: Storage): void {
  const dev = s.device;
  if (dev !== null) {
    s.device = null;
    dev.free();
  }
}

export function releaseStorage(s: Storage): void {
  if (--s.refs === 0) {
    if (s.data !== null) {
      release(s.data); // foreign to the pool (16-bit bits, a file's buffer): dropped
      s.data = null;
    }
    if (s.device !== null) dropDevice(s);
  }
}
