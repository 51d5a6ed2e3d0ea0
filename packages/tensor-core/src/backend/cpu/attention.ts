/**
 * Public entry points for causal GQA attention (the math is in attention-runtime.ts).
 *
 * Shapes: q, out, dout, dq [B, H, T, dh]; k, v, dk, dv [B, Hkv, S, dh]; lse [B, H, T]. Query row t sits at absolute
 * position offset + t (offset = S - T when decoding with a KV cache, 0 in training) and sees keys j <= offset + t.
 * The backward OVERWRITES dq, dk and dv. Work is split over (b, h) items (forward) or (b, kv head) items (backward)
 * across the worker pool when there is more than one item and the work is large enough; non-shared operands are
 * copied into shared scratch for the parallel path. Results do not depend on the thread count.
 */
import { acquireShared, isShared, release } from "./buffer-pool.js";
import { createAttentionRuntime, type AttentionJob, type AttentionRuntime } from "./attention-runtime.js";
import type { Float } from "./gemm-runtime.js";
import { gemmRuntime } from "./gemm.js";
import { attentionWasmBytes } from "./wasm-attention.js";
import { getParallelThreshold, getThreadCount, poolAvailable, runParallel } from "./worker-pool.js";

/** A forward call: the runtime's job without the gradient arrays (see the file header for the shapes). */
export type AttentionForwardParams = Omit<AttentionJob, "dout" | "dq" | "dk" | "dv">;

export interface AttentionBackwardParams extends AttentionForwardParams {
  dout: Float;
  dq: Float;
  dk: Float;
  dv: Float;
}

let runtime: AttentionRuntime | null = null;

function getRuntime(): AttentionRuntime {
  if (runtime === null) runtime = createAttentionRuntime(gemmRuntime(), attentionWasmBytes());
  return runtime;
}

/** True when float32 attention runs the WebAssembly kernels (wasm-attention.ts) on this thread. */
export function attentionUsesWasm(): boolean {
  return getRuntime().wasm;
}

function checkShapes(fn: string, p: AttentionForwardParams, arrays: Record<string, Float>): void {
  const { B, H, Hkv, T, S, dh, offset } = p;
  for (const [name, v] of Object.entries({ B, H, Hkv, T, S, dh, offset })) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`${fn}: ${name} must be a non-negative integer, got ${v}`);
  }
  if (Hkv === 0 || H % Hkv !== 0) throw new RangeError(`${fn}: H (${H}) must be a positive multiple of Hkv (${Hkv})`);
  if (offset + T > S) throw new RangeError(`${fn}: offset (${offset}) + T (${T}) exceeds S (${S})`);
  if (!Number.isFinite(p.scale)) throw new RangeError(`${fn}: scale must be finite, got ${p.scale}`);
  const f32 = p.q instanceof Float32Array;
  const need: Record<string, number> = {
    q: B * H * T * dh, out: B * H * T * dh, dout: B * H * T * dh, dq: B * H * T * dh,
    k: B * Hkv * S * dh, v: B * Hkv * S * dh, dk: B * Hkv * S * dh, dv: B * Hkv * S * dh,
    lse: B * H * T,
  };
  for (const [name, arr] of Object.entries(arrays)) {
    if (arr instanceof Float32Array !== f32) throw new TypeError(`${fn}: ${name} has a different float type than q`);
    if (arr.length < need[name]!) {
      throw new RangeError(`${fn}: ${name} needs ${need[name]} elements, has ${arr.length}`);
    }
  }
}

function toJob(p: AttentionForwardParams, grads: AttentionBackwardParams | null): AttentionJob {
  return {
    q: p.q, k: p.k, v: p.v, out: p.out, lse: p.lse,
    dout: grads?.dout ?? null, dq: grads?.dq ?? null, dk: grads?.dk ?? null, dv: grads?.dv ?? null,
    B: p.B, H: p.H, Hkv: p.Hkv, T: p.T, S: p.S, dh: p.dh, scale: p.scale, offset: p.offset,
  };
}

type JobArrayKey = "q" | "k" | "v" | "out" | "lse" | "dout" | "dq" | "dk" | "dv";

/** Runs `items` on the pool, copying non-shared arrays into shared scratch (outputs copied back). */
function dispatch(
  kind: "attnFwd" | "attnBwd", job: AttentionJob, items: number, flops: number,
  inputs: JobArrayKey[], outputs: JobArrayKey[], run: (job: AttentionJob, claim: () => number) => void,
): void {
  if (getThreadCount() <= 1 || items < 2 || flops < getParallelThreshold() || !poolAvailable()) {
    let next = 0;
    run(job, () => next++);
    return;
  }
  const copies: { key: JobArrayKey; orig: Float; tmp: Float; out: boolean }[] = [];
  for (const key of [...inputs, ...outputs]) {
    const orig = job[key] as Float;
    if (isShared(orig)) continue;
    const tmp = orig instanceof Float32Array ? acquireShared("float32", orig.length) : acquireShared("float64", orig.length);
    const out = outputs.includes(key);
    tmp.set(orig);
    copies.push({ key, orig, tmp, out });
    job[key] = tmp;
  }
  try {
    runParallel(kind, job, items, (claim) => run(job, claim));
    for (const c of copies) if (c.out) c.orig.set(c.tmp.subarray(0, c.orig.length));
  } finally {
    for (const c of copies) release(c.tmp);
  }
}

/** Causal GQA attention forward: writes out [B,H,T,dh] and lse [B,H,T]. */
export function attentionForward(p: AttentionForwardParams): void {
  checkShapes("attentionForward", p, { q: p.q, k: p.k, v: p.v, out: p.out, lse: p.lse });
  const job = toJob(p, null);
  const flops = 4 * p.B * p.H * p.T * (p.offset + p.T / 2) * p.dh;
  const rt = getRuntime();
  dispatch("attnFwd", job, p.B * p.H, flops, ["q", "k", "v"], ["out", "lse"], (j, c) => rt.forwardItems(j, c));
}

/** Causal GQA attention backward from the saved lse: overwrites dq, dk, dv. */
export function attentionBackward(p: AttentionBackwardParams): void {
  checkShapes("attentionBackward", p, {
    q: p.q, k: p.k, v: p.v, out: p.out, lse: p.lse, dout: p.dout, dq: p.dq, dk: p.dk, dv: p.dv,
  });
  const job = toJob(p, p);
  const flops = 10 * p.B * p.H * p.T * (p.offset + p.T / 2) * p.dh;
  const rt = getRuntime();
  dispatch(
    "attnBwd", job, p.B * p.Hkv, flops, ["q", "k", "v", "out", "lse", "dout"], ["dq", "dk", "dv"],
    (j, c) => rt.backwardItems(j, c),
  );
}
