// Tests of the lrc-ts-webgpu implementation's transfers: a kernel case times upload (backendUpload of its
// inputs) and download (backendDownload of its results) apart from compute, and they move what they claim to.
// On lavapipe in CI (LRC_WEBGPU_TEST=1, where a backend that cannot start fails); skipped where no WebGPU
// adapter answers otherwise.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backendFinish, backendReport, setBackend } from "@lrc-ts/tensor-core";
import type { BenchCase } from "../cases.js";
import { lrcTsWebGpu } from "./index.js";

const required = process.env["LRC_WEBGPU_TEST"] === "1";
let ready = false;
beforeAll(async () => {
  try {
    await lrcTsWebGpu().init(1);
    ready = true;
  } catch (e) {
    if (required) throw e;
    console.warn(`lrc-ts-webgpu tests skipped (set LRC_WEBGPU_TEST=1 to require them): ${e instanceof Error ? e.message : String(e)}`);
  }
});
afterAll(() => setBackend("cpu"));

describe("lrc-ts-webgpu", () => {
  it("times upload and download as the transfers of the inputs and the results", async () => {
    if (!ready) return;
    const c: BenchCase = { suite: "kernels", name: "tiny attention", spec: { kind: "attention", backward: true, B: 1, H: 2, Hkv: 1, T: 4, dh: 8 } };
    const live0 = backendReport().device!.liveBuffers;
    const p = await lrcTsWebGpu().prepare(c);
    try {
      const tr = p.transfers!;
      // q [1,2,4,8], k and v [1,1,4,8], dy [1,2,4,8] up; dq, dk, dv down.
      expect(tr.uploadBytes).toBe(4 * (64 + 32 + 32 + 64));
      expect(tr.downloadBytes).toBe(4 * (64 + 32 + 32));
      expect(tr).toMatchObject({ mode: "native webgpu", software: true });
      expect(p.note).toMatch(/^column = compute only.*upload and download in the GPU table/);
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
    await backendFinish();
    expect(backendReport().device!.liveBuffers).toBe(live0);
  });
});
