// Minimal, strict command-line parsing shared by every `lrc` command: `--flag value`, `--flag=value`,
// boolean `--flag`, repeated flags collected into arrays. Unknown flags are an error naming the flag.

export type FlagKind = "string" | "number" | "int" | "boolean" | "list";

export interface FlagSpec {
  readonly kind: FlagKind;
  readonly help: string;
  readonly default?: string | number | boolean;
  readonly required?: boolean;
}

export type FlagSpecs = Record<string, FlagSpec>;

export class UsageError extends Error {
  override name = "UsageError";
}

export type ParsedFlags = Record<string, string | number | boolean | string[] | undefined>;

/** Parses argv against the spec. Throws UsageError naming the offending flag. */
export function parseFlags(argv: readonly string[], specs: FlagSpecs): ParsedFlags {
  const out: ParsedFlags = {};
  for (const [name, spec] of Object.entries(specs)) if (spec.default !== undefined) out[name] = spec.default;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) throw new UsageError(`unexpected argument '${arg}'`);
    const eq = arg.indexOf("=");
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    const spec = specs[name];
    if (spec === undefined) {
      const near = closest(name, Object.keys(specs));
      throw new UsageError(`unknown flag --${name}${near !== undefined ? ` (did you mean --${near}?)` : ""}`);
    }
    let raw: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    if (spec.kind === "boolean") {
      out[name] = raw === undefined ? true : raw !== "false" && raw !== "0";
      continue;
    }
    if (raw === undefined) {
      raw = argv[++i];
      if (raw === undefined) throw new UsageError(`--${name} needs a value`);
    }
    if (spec.kind === "number" || spec.kind === "int") {
      const v = Number(raw);
      if (!Number.isFinite(v) || (spec.kind === "int" && !Number.isInteger(v)))
        throw new UsageError(`--${name} expects ${spec.kind === "int" ? "an integer" : "a number"}, got '${raw}'`);
      out[name] = v;
    } else if (spec.kind === "list") {
      const prev = out[name];
      const items = raw.split(",").filter((s) => s.length > 0);
      out[name] = Array.isArray(prev) ? [...prev, ...items] : items;
    } else {
      out[name] = raw;
    }
  }
  for (const [name, spec] of Object.entries(specs))
    if (spec.required && out[name] === undefined) throw new UsageError(`--${name} is required`);
  return out;
}

/** Levenshtein distance (insert, delete, substitute; an adjacent swap counts 1). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  return d[a.length]![b.length]!;
}

/** The candidate nearest to `word` for a "did you mean" hint: within a third of its length (at least 1), else undefined. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined, bestD = Math.max(1, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const dist = editDistance(word, c);
    if (dist < bestD) [best, bestD] = [c, dist];
  }
  return best;
}

/** Renders the flag table for --help. */
export function formatFlags(specs: FlagSpecs): string {
  const rows = Object.entries(specs).map(([name, s]) => {
    const arg = s.kind === "boolean" ? "" : ` <${s.kind === "list" ? "a,b,..." : s.kind}>`;
    const def = s.default !== undefined && s.kind !== "boolean" ? ` (default: ${String(s.default)})` : "";
    const req = s.required ? " (required)" : "";
    return [`  --${name}${arg}`, `${s.help}${req}${def}`] as const;
  });
  const w = Math.max(0, ...rows.map((r) => r[0].length)) + 2;
  return rows.map(([a, b]) => a.padEnd(w) + b).join("\n");
}
