// Module specifiers of TypeScript sources, for the tests that check where Node may be used
// (browser-entry.test.ts walks the browser entries' graphs; boundary.test.ts checks each package's files).

import fs from "node:fs";
import path from "node:path";
import { builtinModules } from "node:module";

function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

/** Runtime (non-type) module specifiers of a TypeScript source: static imports/re-exports and dynamic imports (not `typeof import(...)`). */
export function runtimeImports(source: string): string[] {
  const code = stripComments(source);
  const out: string[] = [];
  for (const m of code.matchAll(/(?:^|[;\n])\s*(import|export)\s+(type\s+)?([^;]*?)\s*from\s*["']([^"']+)["']/g)) if (m[2] === undefined) out.push(m[4]!);
  for (const m of code.matchAll(/(?:^|[;\n])\s*import\s*["']([^"']+)["']/g)) out.push(m[1]!);
  for (const m of code.matchAll(/(?<!typeof\s+)\bimport\(\s*["']([^"']+)["']\s*\)/g)) out.push(m[1]!);
  return out;
}

/** Every module specifier of a TypeScript source, type-only imports and `typeof import(...)` included. */
export function allImports(source: string): string[] {
  const code = stripComments(source);
  const out: string[] = [];
  for (const m of code.matchAll(/(?:^|[;\n])\s*(?:import|export)\s+(?:type\s+)?[^;]*?\s*from\s*["']([^"']+)["']/g)) out.push(m[1]!);
  for (const m of code.matchAll(/(?:^|[;\n])\s*import\s*["']([^"']+)["']/g)) out.push(m[1]!);
  for (const m of code.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)) out.push(m[1]!);
  return out;
}

/** A Node built-in module: `node:*` or a bare built-in name (`fs`, `fs/promises`, `worker_threads`, ...). */
export function isNodeBuiltin(spec: string): boolean {
  return spec.startsWith("node:") || builtinModules.includes(spec);
}

/** The non-test .ts sources under `dir`, as paths relative to it with "/" separators. */
export function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".ts") && !e.name.endsWith(".test.ts") && !e.name.endsWith(".d.ts")) out.push(path.relative(dir, p).split(path.sep).join("/"));
    }
  };
  walk(dir);
  return out.sort();
}

/**
 * The Node boundary of one package's src/: every "<file> -> <what>" where a source that `nodeAllowed` does not
 * name imports a Node built-in (type-only imports too) or, with `globals`, uses Node's `process` / `Buffer` /
 * `__dirname` / `require`.
 */
export function nodeBoundaryViolations(srcDir: string, nodeAllowed: (file: string) => boolean, opts: { globals?: boolean } = {}): string[] {
  const out: string[] = [];
  for (const file of sourceFiles(srcDir)) {
    if (nodeAllowed(file)) continue;
    const source = fs.readFileSync(path.join(srcDir, file), "utf8");
    for (const spec of allImports(source)) if (isNodeBuiltin(spec)) out.push(`${file} -> ${spec}`);
    if (opts.globals) {
      const code = stripComments(source).replace(/(["'`])(?:\\.|(?!\1)[^\\])*\1/g, '""');
      for (const g of code.matchAll(/\b(process|Buffer|__dirname|__filename|require)\b(?=\s*[.(])/g)) out.push(`${file} -> the Node global ${g[1]}`);
    }
  }
  return out;
}

/** The import cycles among the sources under `srcDir` (relative imports, type-only ones included), each as "a.ts -> b.ts -> a.ts". */
export function importCycles(srcDir: string): string[] {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(srcDir)) {
    const deps = allImports(fs.readFileSync(path.join(srcDir, file), "utf8"))
      .filter((s) => s.startsWith("."))
      .map((s) => path.posix.normalize(path.posix.join(path.posix.dirname(file), s.replace(/\.js$/, ".ts"))));
    graph.set(file, deps);
  }
  const state = new Map<string, "open" | "done">();
  const cycles: string[] = [];
  const visit = (file: string, stack: string[]) => {
    state.set(file, "open");
    stack.push(file);
    for (const dep of graph.get(file) ?? []) {
      if (state.get(dep) === "open") cycles.push([...stack.slice(stack.indexOf(dep)), dep].join(" -> "));
      else if (!state.has(dep)) visit(dep, stack);
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file, []);
  return cycles;
}
