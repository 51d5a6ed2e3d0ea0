// The transfer check both device implementations' tests run (lrcts-gpu on GPU.js, lrcts-webgpu on the native
// backend): a tiny attention case times upload and download apart from compute, and they move what they claim to.

import { expect } from "vitest";
import { backendFinish, backendReport } from "@lrc-ts/tensor-core";
import type { BenchCase } from "../cases.js";
import type { Implementation } from "../impl.js";

/**
 * Prepares a tiny attention case (forward and backward) on `impl`, whose backend is already started, and checks
 * its transfers: the bytes of the inputs up and of the gradients down, the `mode` they report, a note matching
 * `note`, no transfer inside `run()`, four uploads and three downloads, and every buffer freed again.
 */
export async function expectAttentionTransfers(impl: Implementation, mode: string, note: RegExp): Promise<void> {
  const c: BenchCase = { suite: "kernels", name: "tiny attention", spec: { kind: "attention", backward: true, B: 1, H: 2, Hkv: 1, T: 4, dh: 8 } };
  const live0 = backendReport().device!.liveBuffers;
  const p = await impl.prepare(c);
  try {
    const tr = p.transfers!;
    // q [1,2,4,8], k and v [1,1,4,8], dy [1,2,4,8] up; dq, dk, dv down.
    expect(tr.uploadBytes).toBe(4 * (64 + 32 + 32 + 64));
    expect(tr.downloadBytes).toBe(4 * (64 + 32 + 32));
    expect(tr).toMatchObject({ mode, software: true });
    expect(p.note).toMatch(note);
    const dev = (): { uploads: number; downloads: number } => backendReport().device!;
    const before = dev();
    await p.run();
    expect(dev().uploads - before.uploads).toBeLessThanOrEqual(1); // at most valueAndGrad's scalar seed
    expect(dev().downloads).toBe(before.downloads);
    const mid = dev();
    await tr.upload();
    expect(dev().uploads - mid.uploads).toBe(4);
    await tr.download();
    expect(dev().downloads - mid.downloads).toBe(3);
  } finally {
    p.dispose?.();
  }
  await backendFinish(); // webgpu deletes a buffer once the kernels reading it were submitted
  // Inputs, intermediates and the kept results are all freed again.
  expect(backendReport().device!.liveBuffers).toBe(live0);
}
