// One definition per exported name across the four packages: a type, interface, class or enum that two
// entry points export under one name is the same declaration (a re-export), never two with their own fields
// (there were five batch shapes, two of them called TokenBatch, and two CheckpointError classes). Runtime
// values (classes, functions) under one name: browser-entry.test.ts.

import path from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "./testing-internal/fixtures.js";

const PACKAGES = ["tensor-core", "data", "nn", "lrc"];
const ENTRIES = PACKAGES.flatMap((p) => ["index.ts", "browser.ts"].map((f) => path.join(REPO_ROOT, "packages", p, "src", f)));
const TYPE_LIKE = ts.SymbolFlags.Interface | ts.SymbolFlags.TypeAlias | ts.SymbolFlags.Class | ts.SymbolFlags.Enum;

/** Each exported type-like name -> the files declaring it -> the entry points exporting it from there. */
function exportedTypes(): Map<string, Map<string, string[]>> {
  const program = ts.createProgram(ENTRIES, {
    target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
    customConditions: ["source"], strict: true, noEmit: true, skipLibCheck: true, types: ["node"],
  });
  const checker = program.getTypeChecker();
  const out = new Map<string, Map<string, string[]>>();
  for (const entry of ENTRIES) {
    const module = checker.getSymbolAtLocation(program.getSourceFile(entry)!)!;
    for (const sym of checker.getExportsOfModule(module)) {
      const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
      if (!(target.flags & TYPE_LIKE)) continue;
      const file = path.relative(REPO_ROOT, target.declarations![0]!.getSourceFile().fileName);
      const byFile = out.get(sym.name) ?? new Map<string, string[]>();
      byFile.set(file, [...(byFile.get(file) ?? []), path.relative(REPO_ROOT, entry)]);
      out.set(sym.name, byFile);
    }
  }
  return out;
}

describe("exported type names", () => {
  it("no two packages (or entry points) export different declarations under one name", () => {
    const types = exportedTypes();
    expect(types.get("Batch")?.size, "Batch is data's, wherever it is exported").toBe(1);
    expect([...types.get("Batch")!.keys()]).toEqual(["packages/data/src/window-batcher.ts"]);
    const clashes = [...types].filter(([, byFile]) => byFile.size > 1).map(([name, byFile]) => `${name}: ${[...byFile.keys()].join(", ")}`);
    expect(clashes).toEqual([]);
    for (const gone of ["TokenBatch", "IdBatch"]) expect(types.has(gone), gone).toBe(false);
  }, 180_000);
});
