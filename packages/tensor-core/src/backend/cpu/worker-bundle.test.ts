// The committed worker bundle is what scripts/worker-bundle.ts makes from today's sources (rerun
// `pnpm build:worker` when this fails), and the runtimes it carries are the calling thread's modules.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { GENERATED, workerBundleFile } from "../../../scripts/worker-bundle.js";
import { WORKER_SOURCE } from "./worker-bundle.generated.js";

describe("worker bundle", () => {
  it("worker-bundle.generated.ts is not stale (pnpm build:worker)", async () => {
    expect(readFileSync(GENERATED, "utf8") === (await workerBundleFile()), "worker-bundle.generated.ts is stale: run `pnpm build:worker`").toBe(true);
  }, 30_000);

  it("carries the three runtimes and the one wasm-instance helper, and nothing that builds modules", () => {
    for (const name of ["createGemmRuntime", "createAttentionRuntime", "createRowsRuntime", "instantiate"]) expect(WORKER_SOURCE).toContain(`function ${name}(`);
    expect(WORKER_SOURCE).not.toContain("buildVectorWasm");
    expect(WORKER_SOURCE).not.toContain("toString()");
  });
});
