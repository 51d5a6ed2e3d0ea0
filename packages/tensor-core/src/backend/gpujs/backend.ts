// The GPU.js backend (`gpu`): its kernel table is a `GpuOps` over a started runtime; `accepts` refuses what
// its kernels do not take (float64 or int operands other than indices and targets, empty tensors), which
// then runs on cpu. GPU.js itself is imported only when the backend is loaded (`initBackend("gpu")`).

import { sizeOf } from "../../shape.js";
import { Tensor } from "../../tensor.js";
import type { Backend, BackendInfo, DeviceStats, KernelName, KlForward } from "../kernels.js";
import type { GpuOps } from "./ops.js";
import type { GpuMode, GpuRuntime } from "./runtime.js";

export const GPU_MODES: ReadonlyArray<GpuMode | "auto"> = ["auto", "webgpu", "gl", "webasm", "cpu"];

/** The argument of each kernel that may be an int32 tensor (indices, targets); every other tensor is float32. */
const INT_ARG: Partial<Record<KernelName, number>> = { where: 0, astype: 0, gather: 1, gatherBackward: 1, crossEntropy: 1, crossEntropyBackward: 1 };

/** The argument of each kernel that is the shape of its output, when the op passes it. */
const OUT_SHAPE_ARG: Partial<Record<KernelName, number>> = { broadcastTo: 1, slice: 2, concat: 2 };

function tensorsIn(a: unknown): readonly Tensor[] {
  if (a instanceof Tensor) return [a];
  if (Array.isArray(a) && a[0] instanceof Tensor) return a as Tensor[];
  return [];
}

/** Whether the GPU.js kernels take a call: float32 operands (int32 where INT_ARG allows), none empty. */
export function gpujsAccepts(op: KernelName, args: readonly unknown[]): boolean {
  // The backward reads the row log-sum-exps of a forward that ran here.
  if (op === "klDivBackward" && (args[2] as KlForward).lseT === undefined) return false;
  return float32Operands(op, args);
}

/**
 * The rule of device backends that keep float32 on the device (GPU.js, WebGPU): every tensor argument float32
 * (int32 for indices, targets and astype's input), none empty, no empty output; astype only to float32 or int32.
 */
export function float32Operands(op: KernelName, args: readonly unknown[]): boolean {
  if (op === "astype" && args[1] !== "float32" && args[1] !== "int32") return false;
  const out = OUT_SHAPE_ARG[op];
  if (out !== undefined && sizeOf(args[out] as readonly number[]) === 0) return false;
  const intArg = INT_ARG[op];
  return args.every((a, i) => tensorsIn(a).every((t) => t.size > 0 && (t.dtype === "float32" || (t.dtype === "int32" && i === intArg))));
}

export class GpujsBackend implements Backend {
  readonly name = "gpu";

  constructor(readonly kernels: GpuOps) {}

  get rt(): GpuRuntime {
    return this.kernels.rt;
  }

  accepts(op: KernelName, args: readonly unknown[]): boolean {
    return gpujsAccepts(op, args);
  }

  info(): BackendInfo {
    const rt = this.rt;
    const skipped = rt.skipped.length > 0 ? `; not used: ${rt.skipped.join("; ")}` : "";
    return {
      name: "gpu",
      mode: rt.mode,
      software: rt.software,
      device: rt.device.device,
      description: `gpu: GPU.js ${rt.mode} (${rt.kernelClass}) on ${rt.device.device}${skipped}`,
    };
  }

  stats(): DeviceStats {
    return { ...this.rt.stats };
  }

  finish(): Promise<void> {
    return this.rt.finish();
  }

  upload(t: Tensor): void {
    if (t.dtype !== "float32" && t.dtype !== "int32")
      throw new Error(`backendUpload: tensor ${t.id} [${t.shape.join(", ")}] is ${t.dtype}; the gpu backend keeps only float32 and int32 tensors on the device`);
    const s = t.storage!;
    const old = s.device;
    s.device = this.rt.upload(s.data!, t.size);
    old?.free();
  }

  dispose(): void {
    this.rt.destroy();
  }
}

/**
 * Loads the GPU.js backend in `mode` (auto: gl, then webasm, the first that really works; webgpu first when
 * asyncReads and its adapter is a GPU). `current`, a started one, is kept when it runs the mode asked for.
 */
export async function loadGpujs(opts: { mode?: string; asyncReads?: boolean }, current: Backend | null): Promise<GpujsBackend> {
  const want = (opts.mode ?? "auto") as GpuMode | "auto";
  if (!GPU_MODES.includes(want)) throw new Error(`initBackend: unknown GPU.js mode '${String(want)}' (known: ${GPU_MODES.join(", ")})`);
  if (current instanceof GpujsBackend && (want === "auto" || current.rt.mode === want)) return current;
  const [{ createRuntime }, { GpuOps }] = await Promise.all([import("./runtime.js"), import("./ops.js")]);
  return new GpujsBackend(new GpuOps(await createRuntime(want, { asyncReads: opts.asyncReads === true })));
}
