// The backend registry and the dispatcher: a registered backend's kernel runs when it accepts the call, the cpu
// kernel otherwise, and both are counted per kernel; loaders get the instance they started before; names that
// are not registered fail with the list of known ones.
import { afterAll, describe, expect, expectTypeOf, it } from "vitest";
import { backendReport, getBackend, initBackend, initBackendFromEnv, initBackendFromEnvAsync, registerBackend, registeredBackends, resetBackendReport, setBackend, type BackendName } from "./backend.js";
import type { Backend, Kernels } from "./kernels.js";
import { hasKernel } from "./dispatch.js";
import * as ops from "../ops/index.js";
import { tensor } from "../tensor.js";

afterAll(() => setBackend("cpu"));

describe("backend registry and dispatch", () => {
  it("runs the backend's kernel when it accepts the call, else cpu's, and counts both", async () => {
    const seen: string[] = [];
    // A backend whose only kernel negates float32 tensors by way of the cpu ops, marking what it ran.
    const kernels: Partial<Kernels> = {
      unary: (op, x) => {
        seen.push(`${op} ${x.dtype}`);
        return tensor(Float32Array.from(x.data(), (v) => -v), [...x.shape]);
      },
    };
    const loads: Array<Backend | null> = [];
    registerBackend("negator", (_opts, current) => {
      loads.push(current);
      return current ?? { name: "negator", kernels, accepts: (_op, args) => (args[1] as { dtype: string }).dtype === "float32", info: () => ({ name: "negator", description: "test backend" }) };
    });
    expect(registeredBackends()).toContain("negator");
    expect(() => setBackend("negator")).toThrow(/loads asynchronously; use `await initBackend\('negator'\)`/);
    expect((await initBackend("negator")).description).toBe("test backend");
    resetBackendReport();
    expect(Array.from(ops.exp(tensor([0, 1])).data())).toEqual([-0, -1]); // its kernel (not exp): it ran
    expect(Array.from(ops.neg(tensor(new Float64Array([2]))).data())).toEqual([-2]); // float64: refused, cpu
    expect(Array.from(ops.add(tensor([1]), tensor([2])).data())).toEqual([3]); // no binary kernel: cpu
    expect(seen).toEqual(["exp float32"]);
    expect(backendReport().ops).toEqual([{ op: "binary", device: 0, cpu: 1 }, { op: "unary", device: 1, cpu: 1 }]);
    // hasKernel: the backend's own kernel and accepted arguments only; counts nothing.
    expect(hasKernel("unary", "exp", tensor([0]))).toBe(true);
    expect(hasKernel("unary", "exp", tensor(new Float64Array([0])))).toBe(false);
    expect(hasKernel("binary", "add", tensor([1]), tensor([2]), [1], "float32")).toBe(false);
    expect(backendReport().ops).toEqual([{ op: "binary", device: 0, cpu: 1 }, { op: "unary", device: 1, cpu: 1 }]);
    setBackend("cpu");
    expect(hasKernel("binary", "add", tensor([1]), tensor([2]), [1], "float32")).toBe(true); // cpu has every kernel
    expect(getBackend().name).toBe("cpu");
    ops.exp(tensor([0]));
    expect(seen).toHaveLength(1); // cpu runs its own kernels, uncounted
    expect(backendReport().ops.find((o) => o.op === "unary")).toEqual({ op: "unary", device: 1, cpu: 1 });
    setBackend("negator");
    expect(getBackend().name).toBe("negator");
    await initBackend("negator");
    expect(loads).toEqual([null, loads[1]]); // the second load was handed the first instance
    expect(loads[1]).not.toBeNull();
    setBackend("cpu");
  });

  it("rejects unknown names with the registered ones, and re-registering cpu or auto", async () => {
    const registered = /\(registered: cpu, gpu, webgpu, negator; or auto\)/;
    expect(() => setBackend("nope")).toThrow(/^setBackend: unknown backend 'nope' /);
    expect(() => setBackend("nope")).toThrow(registered);
    await expect(initBackend("nope")).rejects.toThrow(/^initBackend: unknown backend 'nope' \(registered: cpu, gpu, webgpu, negator; or auto\)$/);
    expect(() => initBackendFromEnv({ LRC_BACKEND: "cuda" })).toThrow(/^LRC_BACKEND: unknown backend 'cuda' \(registered: cpu, gpu, webgpu, negator; or auto\)$/);
    await expect(initBackendFromEnvAsync({ LRC_BACKEND: "cuda" }, () => {})).rejects.toThrow(/^LRC_BACKEND: unknown backend 'cuda'/);
    expect(() => setBackend("auto")).toThrow(/use `await initBackend\('auto'\)`/);
    expect(() => registerBackend("cpu", () => ({ name: "cpu", kernels: {} }))).toThrow(/'cpu' is built in/);
    expect(() => registerBackend("auto", () => ({ name: "auto", kernels: {} }))).toThrow(/'auto' is built in/);
  });

  it("BackendName: the built-in names, and any registered one", () => {
    expectTypeOf<"cpu" | "gpu" | "webgpu" | "auto">().toMatchTypeOf<BackendName>();
    expectTypeOf<"negator">().toMatchTypeOf<BackendName>();
    expectTypeOf(setBackend).parameter(0).toEqualTypeOf<BackendName>();
    expectTypeOf(initBackend).parameter(0).toEqualTypeOf<BackendName>();
    expectTypeOf(registeredBackends).returns.toEqualTypeOf<BackendName[]>();
  });
});
