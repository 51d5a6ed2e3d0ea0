// Command-line flags of `pnpm bench` (benchmarks/run.ts).

export const GPU_MODES = ["auto", "gl", "webasm", "webgpu"] as const;
export type GpuModeArg = (typeof GPU_MODES)[number];
/** The lrc-ts-webgpu column's optional WebGPU features: "on" (shader-f16 and subgroups where the adapter has them) or "off". */
export type WebGpuFeaturesArg = "on" | "off";

export interface BenchArgs {
  /** Write benchmarks/results/<date>-<machine>.json. */
  json: boolean;
  /** Rewrite the results table in benchmarks/README.md. */
  readme: boolean;
  /** Case-insensitive substrings; a case runs when its label contains any of them (all run when empty). */
  filters: string[];
  quick: boolean;
  /** Thread counts for the multi-threaded implementations (lrc-ts, tfjs-wasm); default 1 and all cores. */
  threads: number[] | null;
  /** GPU.js mode for lrc-ts-gpu: "auto" (gl where an X display or xvfb-run exists and gl loads, else webasm). */
  gpuMode: GpuModeArg;
  webgpuFeatures: WebGpuFeaturesArg;
  /** PyTorch reference results (JSON from /work/shared/reference/torch_llama.py --json) to show beside ours. */
  torchJson: string[];
  /** Kill a child whose RSS passes this many GiB (the case is reported as skipped with the reason). */
  maxRssGb: number;
  help: boolean;
}

export const DEFAULT_MAX_RSS_GB = 16;

export const USAGE = `Usage: pnpm bench [options]

Runs the tinybench suites (kernels, gradients, e2e) for lrc-ts (cpu backend; gpu backend for the kernels)
and TensorFlow.js (cpu and wasm backends), each implementation and thread count in its own child process,
and prints the results.

Options:
  --json               write benchmarks/results/<YYYY-MM-DD>-<machine>.json
  --readme             rewrite the results table in benchmarks/README.md
  --filter <text>      run only cases whose label contains <text> (case-insensitive; repeatable, OR'ed).
                       A label looks like "kernels/matmul 1024x1024x1024 NN lrc-ts@2t" (the gpu
                       backend: "... lrc-ts-gpu@1t").
  --quick              shorter time per case (250 ms, at least 2 samples) for a fast look
  --threads <list>     thread counts for lrc-ts and tfjs-wasm, e.g. "1,2" (default: 1 and all cores)
  --gpu-mode <mode>    GPU.js mode of the lrc-ts-gpu column: auto (default: gl when the gl package loads and
                       an X display is set, or under \`xvfb-run -a\` when DISPLAY is unset; else webasm), gl,
                       webasm, or webgpu (Dawn in Node: the \`webgpu\` package and a Vulkan driver)
  --webgpu-features <on|off>  the lrc-ts-webgpu column's optional features: on (default: shader-f16 and
                       subgroups where the adapter has them) or off (the plain kernels), to compare the two
  --torch-json <file>  add a PyTorch reference result file (repeatable; label taken from the file)
  --max-rss-gb <n>     kill a case's child process when its RSS passes n GiB (default ${DEFAULT_MAX_RSS_GB}); the case
                       is reported as skipped with the reason

The real-shape group (e2e "real-shape distill step ..."; Qwen2.5-0.5B's shape, many GB each) runs only when a
filter names it: flock /tmp/lrc-bigmem.lock pnpm bench --filter real-shape --threads 2. Its PyTorch column runs
/work/shared/reference/torch_lrc_distill.py (LRC_TORCH_REFERENCE) with /usr/bin/python3 (LRC_BENCH_PYTHON)
when torch imports.
  -h, --help           show this help
`;

export function parseArgs(argv: readonly string[]): BenchArgs {
  const args: BenchArgs = { json: false, readme: false, filters: [], quick: false, threads: null, gpuMode: "auto", webgpuFeatures: "on", torchJson: [], maxRssGb: DEFAULT_MAX_RSS_GB, help: false };
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith("--")) throw new Error(`pnpm bench: ${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    switch (a) {
      case "--json": args.json = true; break;
      case "--readme": args.readme = true; break;
      case "--quick": args.quick = true; break;
      case "-h": case "--help": args.help = true; break;
      case "--filter": args.filters.push(value(i, a).toLowerCase()); i++; break;
      case "--torch-json": args.torchJson.push(value(i, a)); i++; break;
      case "--max-rss-gb": {
        const v = Number(value(i, a));
        i++;
        if (!(v > 0)) throw new Error(`pnpm bench: --max-rss-gb must be a positive number, got "${argv[i]}"`);
        args.maxRssGb = v;
        break;
      }
      case "--gpu-mode": {
        const v = value(i, a);
        i++;
        const mode = GPU_MODES.find((m) => m === v);
        if (mode === undefined) throw new Error(`pnpm bench: --gpu-mode must be one of ${GPU_MODES.join(", ")}, got "${v}"`);
        args.gpuMode = mode;
        break;
      }
      case "--webgpu-features": {
        const v = value(i, a);
        i++;
        if (v !== "on" && v !== "off") throw new Error(`pnpm bench: --webgpu-features must be on or off, got "${v}"`);
        args.webgpuFeatures = v;
        break;
      }
      case "--threads": {
        const v = value(i, a);
        i++;
        const list = v.split(",").map((s) => Number(s.trim()));
        if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 1 || n > 64))
          throw new Error(`pnpm bench: --threads must be a comma-separated list of integers in 1..64, got "${v}"`);
        args.threads = [...new Set(list)].sort((x, y) => x - y);
        break;
      }
      default:
        // pnpm passes a literal "--" through when called as `pnpm bench -- --json`.
        if (a === "--") break;
        throw new Error(`pnpm bench: unknown option "${a}" (see --help)`);
    }
  }
  return args;
}

export function matchesFilters(label: string, filters: readonly string[]): boolean {
  if (filters.length === 0) return true;
  const l = label.toLowerCase();
  return filters.some((f) => l.includes(f));
}
