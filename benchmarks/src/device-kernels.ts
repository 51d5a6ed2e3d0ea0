// One kernel case on a device backend (the lrc-ts-gpu and lrc-ts-webgpu columns), timed in three parts:
// upload (the inputs host -> device, `backendUpload`), compute (the lrc-ts column's ops on inputs already on the
// device, waited for with `backendFinish()`; results not read back) and download (one run's results device ->
// host, `backendDownload`). The columns differ only in the backend they start and in what their notes say.

import { backendDownload, backendFinish, backendReport, backendUpload, resetBackendReport, scope, tensor } from "@lrc-ts/tensor-core";
import type { Tensor } from "@lrc-ts/tensor-core";
import type { BenchCase } from "./cases.js";
import type { Prepared } from "./impl.js";
import { SkipCase } from "./impl.js";
import { kernelWork } from "./lrcts/kernels.js";

export const firstLine = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split("\n")[0]!;
const MiB = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 3 : 1)} MiB`;

/** What a column's records say. */
export interface DeviceHooks {
  /** The column's first note (what "compute" means for it). */
  computeNote: string;
  /** Note the host <-> device bytes compute itself moves (from the backend's device counters). */
  countTraffic: boolean;
  mode: string;
  device: string;
  software: boolean;
  /** The SkipCase message's start, e.g. "the webgpu backend cannot run it". */
  cannotRun: string;
}

/** Builds the case, runs it once (compiles its kernels, uploads its inputs) and wires the three timings. */
export async function prepareKernelOnDevice(c: BenchCase, h: DeviceHooks): Promise<Prepared> {
  const dc = kernelWork(c.spec);
  // Host copies of the inputs, for the upload timing: each upload replaces the previous device copy. (A bfloat16
  // input's copy by an exact round trip through float32: its values are readable only widened.)
  const uploads = dc.inputs.map((t) => (t.dtype === "bfloat16" ? scope(() => t.astype("float32").astype("bfloat16")) : tensor(t.data(), t.shape)));
  const timed = async (): Promise<void> => {
    scope(() => {
      dc.compute();
    });
    await backendFinish();
  };
  let results: Tensor[] = [];
  const disposeAll = (): void => {
    for (const t of [...results, ...dc.inputs, ...uploads]) t.dispose();
  };
  try {
    await timed();
    // The second run is what every timed run looks like: count its host <-> device traffic and fallbacks.
    resetBackendReport();
    const before = backendReport().device;
    results = scope(() => dc.compute());
    await backendFinish();
    const after = backendReport().device;
    const fallbacks = backendReport().ops.filter((o) => o.cpu > 0).map((o) => `${o.op} ×${o.cpu}`);
    const outs = results.map((t) => (t.dtype === "int32" ? new Int32Array(t.size) : new Float32Array(t.size)));
    // Rejects, naming the tensor, when a result came back on the host (its op ran on the cpu backend).
    const download = async (): Promise<void> => {
      for (let i = 0; i < results.length; i++) await backendDownload(results[i]!, outs[i]!);
    };
    await download();
    const notes = [h.computeNote];
    if (fallbacks.length > 0) notes.push(`ran on the cpu backend (fallback): ${fallbacks.join(", ")}`);
    if (h.countTraffic && before !== undefined && after !== undefined) {
      const up = after.uploadBytes - before.uploadBytes, down = after.downloadBytes - before.downloadBytes;
      if (up + down > 1024) notes.push(`compute itself moves ${MiB(up)} up and ${MiB(down)} down per run`);
    }
    return {
      run: timed,
      dispose: disposeAll,
      note: notes.join("; "),
      transfers: {
        upload: async () => {
          for (const t of uploads) backendUpload(t);
          await backendFinish();
        },
        download,
        uploadBytes: uploads.reduce((s, t) => s + (t.dtype === "bfloat16" ? 2 : 4) * t.size, 0),
        downloadBytes: results.reduce((s, t) => s + 4 * t.size, 0),
        mode: h.mode,
        device: h.device,
        software: h.software,
      },
    };
  } catch (e) {
    disposeAll();
    throw new SkipCase(`${h.cannotRun}: ${firstLine(e)}`);
  }
}
