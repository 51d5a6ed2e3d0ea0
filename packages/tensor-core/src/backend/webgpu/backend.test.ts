// The webgpu backend as a backend (its op/gradient parity with cpu is in ../parity.test.ts, run with
// LRC_WEBGPU_TEST=1): what it says it runs on, and that the kernels of an LRC step (RMSNorm, matmul, cross-entropy,
// mse and their gradients) run on the device with no cpu fallback, and so do the matmuls and the embedding of a
// bfloat16 teacher weight. On lavapipe in CI (LRC_WEBGPU_TEST=1, where
// a backend that cannot start fails); skipped where no WebGPU adapter answers otherwise.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scope, tensor } from "../../tensor.js";
import * as ops from "../../ops/index.js";
import { backendReport, getBackend, initBackend, resetBackendReport, setBackend } from "../backend.js";
import { close, rnd, values, withGrads } from "../../testing-internal/parity.js";
import type { Tensor } from "../../tensor.js";
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

  it("reads a bfloat16 teacher weight on the device: its matmuls (forward and the LRC backward's W_t^T dY) and the embedding", async () => {
    if (!ready) return;
    const Wt = rnd([12, 16]).astype("bfloat16"), E = rnd([10, 16]).astype("bfloat16");
    const [WtF, EF] = [Wt.astype("float32"), E.astype("float32")];
    const ids = tensor(new Int32Array([3, 0, 9, 3]), [4]);
    const inputs = [rnd([4, 16]), rnd([16, 8])]; // x, P
    // h = x + E[ids]; y = h W_t^T (the teacher's linear); W_s = W_t P (LRC), whose dP is W_t^T dW_s
    const step = (W: Tensor, Em: Tensor) => () => withGrads((x, P) => ops.matmul(ops.matmul(ops.add(x, ops.embedding(Em, ids)), W, { transB: true }), ops.matmul(W, P)), inputs);
    setBackend("cpu");
    const want = await values(scope(step(WtF, EF)));
    resetBackendReport();
    setBackend("webgpu");
    const outs = scope(step(Wt, E));
    setBackend("cpu");
    close("bfloat16 teacher", want, await values(outs), 1e-5);
    const rep = backendReport().ops;
    expect(rep.filter((o) => o.cpu > 0).map((o) => o.op)).toEqual([]);
    for (const op of ["gemm", "gather"]) expect(rep.find((o) => o.op === op)?.device ?? 0, `${op} on the device`).toBeGreaterThan(0);
  });

  it("reads a float16 teacher weight on the device (shader-f16 when the adapter has it, unpack2x16float without): the same as the widened float32", async () => {
    if (!ready) return;
    const Wt = rnd([12, 16]).astype("float16"), E = rnd([10, 16]).astype("float16");
    const [WtF, EF] = [Wt.astype("float32"), E.astype("float32")];
    const ids = tensor(new Int32Array([3, 0, 9, 3]), [4]);
    const inputs = [rnd([4, 16]), rnd([16, 8])];
    const step = (W: Tensor, Em: Tensor) => () => withGrads((x, P) => ops.matmul(ops.matmul(ops.add(x, ops.embedding(Em, ids)), W, { transB: true }), ops.matmul(W, P)), inputs);
    setBackend("cpu");
    const want = await values(scope(step(WtF, EF)));
    for (const f16 of [true, false]) {
      await initBackend("webgpu", { f16 });
      resetBackendReport();
      setBackend("webgpu");
      const outs = scope(step(Wt, E));
      setBackend("cpu");
      close(`float16 teacher (f16 ${f16})`, want, await values(outs), 1e-5);
      const rep = backendReport().ops;
      expect(rep.filter((o) => o.cpu > 0).map((o) => o.op)).toEqual([]);
      for (const op of ["gemm", "gather"]) expect(rep.find((o) => o.op === op)?.device ?? 0, `${op} on the device`).toBeGreaterThan(0);
    }
    await initBackend("webgpu");
    setBackend("cpu");
  });

  it("starts again with the optional features off, re-uploading from the host what the previous device held", async () => {
    if (!ready) return;
    setBackend("webgpu");
    const x = rnd([3, 300]);
    const first = await values([ops.softmax(x)]); // x now has a copy on the first device
    await initBackend("webgpu", { f16: false, subgroups: false });
    const info = getBackend();
    const again = await values([ops.softmax(x)]);
    await initBackend("webgpu");
    setBackend("cpu");
    expect(info.description).toMatch(/optional features: none$/);
    close("softmax on the plain device", first, again, 1e-6);
  });
});
