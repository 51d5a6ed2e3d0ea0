// Where Node may be used (issue #21's lint rule, run by `pnpm test`). In lrc, only src/node/ (file I/O, the
// training loop), src/cli/, src/commands/ and cli.ts (the command line) and testing-internal/ import a Node
// built-in (type-only imports count) or use Node's globals; everything else is platform-neutral and is what
// @lrc-ts/lrc/browser exports. In tensor-core, data and nn, the Node-only files are the ones listed here
// (tensor-core names them *-node.ts); any other file importing a Node built-in fails. browser-entry.test.ts
// checks the other half: nothing reachable from a browser entry is Node-only. And lrc, nn and data have no
// import cycles (tensor-core has some among tensor.ts, the tape and the ops; not checked here).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { importCycles, nodeBoundaryViolations } from "./testing-internal/imports.js";

const PACKAGES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The Node side of each package's src/ (paths relative to src/). */
const NODE_SIDE: Record<string, (file: string) => boolean> = {
  lrc: (f) => /^(node|cli|commands|testing-internal)\//.test(f) || f === "cli.ts",
  "tensor-core": (f) => /-node\.ts$/.test(f) || f.startsWith("testing-internal/") || ["backend/cpu/worker-main.ts", "backend/cpu/worker-pool.ts"].includes(f),
  data: (f) => ["bpe-trainer.ts", "inputs.ts", "manifest.ts", "rows.ts", "shard-reader.ts", "shard-writer.ts", "tokenizer.ts"].includes(f),
  nn: (f) => ["checkpoint.ts", "config-file.ts"].includes(f) || f.startsWith("testing-internal/"),
};

describe("the Node boundary", () => {
  it.each(Object.keys(NODE_SIDE))("%s: no Node import outside its Node files", (pkg) => {
    const v = nodeBoundaryViolations(path.join(PACKAGES, pkg, "src"), NODE_SIDE[pkg]!, { globals: pkg === "lrc" });
    expect(v, `move the file under src/node/ (lrc) or keep the Node call out of it:\n${v.join("\n")}`).toEqual([]);
  });

  it("each listed Node file exists (a renamed one must be renamed here too)", () => {
    for (const [pkg, files] of [["data", ["bpe-trainer.ts", "inputs.ts", "manifest.ts", "rows.ts", "shard-reader.ts", "shard-writer.ts", "tokenizer.ts"]], ["nn", ["checkpoint.ts", "config-file.ts"]], ["tensor-core", ["backend/cpu/worker-main.ts", "backend/cpu/worker-pool.ts", "files-node.ts", "safetensors-node.ts"]]] as const)
      for (const f of files) expect(fs.existsSync(path.join(PACKAGES, pkg, "src", f)), `${pkg}/src/${f}`).toBe(true);
  });

  it.each(["lrc", "nn", "data"])("%s: no import cycle (lrc's metrics.ts and trainer.ts imported each other)", (pkg) => {
    expect(importCycles(path.join(PACKAGES, pkg, "src"))).toEqual([]);
  });

  describe("fails on planted violations", () => {
    const src = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-boundary-"));
    afterAll(() => fs.rmSync(src, { recursive: true, force: true }));
    const plant = (file: string, text: string) => {
      fs.mkdirSync(path.dirname(path.join(src, file)), { recursive: true });
      fs.writeFileSync(path.join(src, file), text);
    };
    plant("clone.ts", 'import fs from "node:fs";\nexport const a = fs;\n');
    plant("task.ts", 'import type { Stats } from "fs";\nexport type S = Stats;\n');
    plant("trainer.ts", 'export const b = () => import("node:worker_threads");\n');
    plant("plot.ts", 'export function log(s: string) {\n  process.stderr.write(s);\n}\n');
    plant("eigen.ts", 'export { x } from "fs/promises";\n');
    // Not violations: a comment, a string, a test file, and the Node side.
    plant("losses.ts", '// import fs from "node:fs";\nexport const msg = "process.exit(1) is not called here";\n');
    plant("clone.test.ts", 'import fs from "node:fs";\n');
    plant("node/files.ts", 'import fs from "node:fs";\nexport const c = process.pid + fs.constants.O_RDONLY;\n');
    plant("cli/args.ts", 'import { parseArgs } from "node:util";\nexport const d = parseArgs;\n');

    it("names each file and what it imports or uses", () => {
      expect(nodeBoundaryViolations(src, NODE_SIDE.lrc!, { globals: true })).toEqual([
        "clone.ts -> node:fs",
        "eigen.ts -> fs/promises",
        "plot.ts -> the Node global process",
        "task.ts -> fs",
        "trainer.ts -> node:worker_threads",
      ]);
    });

    it("finds a planted import cycle", () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-cycle-"));
      fs.mkdirSync(path.join(dir, "node"));
      fs.writeFileSync(path.join(dir, "trainer.ts"), 'import type { M } from "./node/metrics.js";\nexport type T = M;\n');
      fs.writeFileSync(path.join(dir, "node", "metrics.ts"), 'import type { T } from "../trainer.js";\nexport type M = T;\n');
      fs.writeFileSync(path.join(dir, "plot.ts"), 'import type { T } from "./trainer.js";\nexport type P = T;\n');
      try {
        expect(importCycles(dir)).toEqual(["node/metrics.ts -> trainer.ts -> node/metrics.ts"]);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it("the same tree with everything allowed passes (the rule, not the scanner, decides)", () => {
      expect(nodeBoundaryViolations(src, () => true, { globals: true })).toEqual([]);
    });
  });
});
