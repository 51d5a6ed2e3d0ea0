// Vite build of the browser example. The workspace packages resolve through their "browser" export
// condition (platform-neutral entry points) and "source" (TypeScript straight from src/). A guard plugin
// fails the build if anything in the page or the worker imports a Node built-in module.

import { builtinModules } from "node:module";
import { defaultClientConditions, defineConfig } from "vite";
import type { Plugin } from "vite";

const NODE_BUILTINS = new Set(builtinModules);

function noNodeModules(): Plugin {
  return {
    name: "lrc-no-node-modules",
    enforce: "pre",
    resolveId(id, importer) {
      if (id.startsWith("node:") || NODE_BUILTINS.has(id) || NODE_BUILTINS.has(id.split("/")[0]!))
        this.error(`${importer ?? "?"} imports the Node module "${id}": browser entry points must not (use the package's "browser" export)`);
      return null;
    },
  };
}

export default defineConfig({
  base: "./",
  resolve: { conditions: ["source", ...defaultClientConditions] },
  plugins: [noNodeModules()],
  // keepNames: tensor-core checks which GPU.js kernel class really ran (WebGL2Kernel, WebAssemblyKernel) by name.
  worker: { format: "es", plugins: () => [noNodeModules()], rolldownOptions: { output: { keepNames: true } } },
  build: { target: "es2022", outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 2000, rolldownOptions: { output: { keepNames: true } } },
  preview: { host: "127.0.0.1", strictPort: false },
});
