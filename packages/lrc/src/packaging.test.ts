// What the four published packages declare: Apache-2.0 with the license text shipped in each, only dist/ (plus
// the README and LICENSE npm always adds), the `lrc` bin, and GPU.js / webgpu as optional peers (the cpu
// backend needs neither; initBackend("gpu") loads them), still devDependencies here for the gpu test groups.

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "./testing-internal/fixtures.js";

const PACKAGES = ["tensor-core", "data", "nn", "lrc"];
const pkg = (name: string) => JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "packages", name, "package.json"), "utf8")) as Record<string, any>;

describe("published packages", () => {
  it.each(PACKAGES)("%s: Apache-2.0, the license text beside it, dist only", (name) => {
    const p = pkg(name);
    expect(p.license).toBe("Apache-2.0");
    expect(p.files).toEqual(["dist", "!dist/.tsbuildinfo"]);
    const text = fs.readFileSync(path.join(REPO_ROOT, "packages", name, "LICENSE"), "utf8");
    expect(text).toBe(fs.readFileSync(path.join(REPO_ROOT, "LICENSE"), "utf8"));
    expect(text).toMatch(/Apache License\s+Version 2\.0, January 2004/);
    expect(fs.readFileSync(path.join(REPO_ROOT, "packages", name, "README.md"), "utf8")).toMatch(/## Install/);
  });

  it("no package has gpu.js, gl or webgpu as a hard dependency; tensor-core has them as optional peers and devDependencies", () => {
    for (const name of PACKAGES) for (const dep of ["gpu.js", "gl", "webgpu"]) expect(pkg(name).dependencies?.[dep], `${name} -> ${dep}`).toBeUndefined();
    const tc = pkg("tensor-core");
    for (const dep of ["gpu.js", "webgpu"]) {
      expect(tc.peerDependencies[dep]).toBe(tc.devDependencies[dep]);
      expect(tc.peerDependenciesMeta[dep]).toEqual({ optional: true });
    }
  });

  it("lrc's bin is dist/cli.js, which starts with a node shebang", () => {
    expect(pkg("lrc").bin).toEqual({ lrc: "./dist/cli.js" });
    expect(fs.readFileSync(path.join(REPO_ROOT, "packages/lrc/src/cli.ts"), "utf8")).toMatch(/^#!\/usr\/bin\/env node\n/);
  });
});
