// The device the webgpu-backend tests run on. With LRC_WEBGPU_TEST=1 (CI's lavapipe step) a device that cannot
// start fails the suite with the reason; without it, the suites are skipped where no adapter answers (the plain
// `pnpm test` run on a machine with no WebGPU adapter), and run where one does.

import { rng } from "../../random.js";
import { WebGpuDevice, type WebGpuDeviceOptions } from "./device.js";

export const webgpuRequired = process.env.LRC_WEBGPU_TEST === "1";

/** The test device (with `opts`), or null (with the reason logged) when none starts and LRC_WEBGPU_TEST is not 1. */
export async function testDevice(opts: WebGpuDeviceOptions = {}): Promise<WebGpuDevice | null> {
  try {
    return await WebGpuDevice.create(opts);
  } catch (e) {
    if (webgpuRequired) throw e;
    console.warn(`webgpu backend tests skipped (set LRC_WEBGPU_TEST=1 to require them): ${e instanceof Error ? e.message : String(e)}`);
    return null;
  }
}

/** Uniform random values in [-1, 1) (deterministic per seed). */
export function randomArray(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => 2 * r.uniform() - 1);
}
