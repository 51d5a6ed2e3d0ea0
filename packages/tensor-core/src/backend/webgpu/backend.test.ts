// The webgpu backend as a backend (its op/gradient parity with cpu is in ../parity.test.ts, run with
// LRC_WEBGPU_TEST=1): what it says it runs on, and that the kernels of an LRC step (RMSNorm, matmul, cross-entropy,
// mse and their gradients) run on the device with no cpu fallback. On lavapipe in CI (LRC_WEBGPU_TEST=1, where
// a backend that cannot start fails); skipped where no WebGPU adapter answers otherwise.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scope, tensor } from "../../tensor.js";
import * as ops from "../../ops/index.js";
import { backendReport, getBackend, initBackend, resetBackendReport, setBackend } from "../backend.js";
import { rnd, values, withGrads } from "../../testing-internal/parity.js";
import { webgpuRequired } from "./test-device.js";

let ready = false;
beforeAll(async () => {
  try {
    await initBackend("webgpu");
    ready = true;
  } catch (e) {
    if (webgpuRequired) throw e;
    console.warn(`webgpu backend tests skipped (set LRC_WEBGPU_TEST=1 to require them): ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    setBackend("cpu");
  }
});
afterAll(() => setBackend("cpu"));

describe("the webgpu backend", () => {
  it("names the adapter, whether it is software and the matmul design", () => {
    if (!ready) return;
    setBackend("webgpu");
    const info = getBackend();
    setBackend("cpu");
    expect(info.name).toBe("webgpu");
    expect(info.description).toMatch(/^webgpu: WGSL kernels on .+; matmul (tiled|texture)/);
    expect(typeof info.software).toBe("boolean");
  });

  it("runs the LRC step's kernels on the device: no cpu fallback for them", async () => {
    if (!ready) return;
    const inputs = [rnd([4, 16]), rnd([16]), rnd([11, 16])];
    resetBackendReport();
    setBackend("webgpu");
    const outs = scope(() => withGrads((x, w, ww) => {
      const h = ops.rmsNorm(x, w, 1e-6);
      const logits = ops.matmul(h, ww, { transB: true });
      return ops.add(ops.crossEntropy(logits, tensor(new Int32Array([1, 2, 3, 4]), [4])), ops.mse(h, x));
    }, inputs));
    setBackend("cpu");
    await values(outs);
    const rep = backendReport().ops;
    expect(rep.filter((o) => o.cpu > 0).map((o) => o.op)).toEqual([]);
    for (const op of ["rmsNorm", "rmsNormBackward", "gemm", "crossEntropy", "crossEntropyBackward", "mse", "mseBackward"])
      expect(rep.find((o) => o.op === op)?.device ?? 0, `${op} on the device`).toBeGreaterThan(0);
  });
});
