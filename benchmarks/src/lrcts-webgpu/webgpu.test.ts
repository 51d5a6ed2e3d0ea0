// Tests of the lrc-ts-webgpu implementation's transfers: a kernel case times upload (backendUpload of its
// inputs) and download (backendDownload of its results) apart from compute, and they move what they claim to.
// On lavapipe in CI (LRC_WEBGPU_TEST=1, where a backend that cannot start fails); skipped where no WebGPU
// adapter answers otherwise.

import { afterAll, beforeAll, describe, it } from "vitest";
import { setBackend } from "@lrc-ts/tensor-core";
import { expectAttentionTransfers } from "../testing-internal/transfers.js";
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
    await expectAttentionTransfers(lrcTsWebGpu(), "native webgpu", /^column = compute only.*upload and download in the GPU table/);
  });
});
