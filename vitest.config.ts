import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: { conditions: ["source"] },
  ssr: { resolve: { conditions: ["source"] } },
  test: {
    include: ["packages/*/src/**/*.test.ts", "examples/*/src/**/*.test.ts", "benchmarks/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
