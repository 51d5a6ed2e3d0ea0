// Reference-counted storage behind tensors. Views (reshape, detach) share a Storage; when the last tensor
// using it is disposed the buffer goes back to the pool, so a training step's intermediates are reused by
// the next step instead of being reallocated (a fresh, page-touched 16 MB Float32Array costs ~50 ms here).

import type { DType, TypedArray } from "./dtype.js";
import { acquire, acquireZeroed, release } from "./backend/cpu/buffer-pool.js";

export class Storage {
  refs = 1;
  constructor(public data: TypedArray | null) {}
}

/** A buffer that the caller fully overwrites. */
export function allocDirty(dtype: DType, n: number): TypedArray {
  return acquire(dtype, n);
}

/** A zero-filled buffer. */
export function allocZeros(dtype: DType, n: number): TypedArray {
  return acquireZeroed(dtype, n);
}

export function releaseStorage(s: Storage): void {
  if (--s.refs === 0 && s.data !== null) {
    release(s.data);
    s.data = null;
  }
}
