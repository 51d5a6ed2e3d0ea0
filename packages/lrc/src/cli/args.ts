// Strict command-line parsing shared by every `lrc` command, on Node's util.parseArgs: `--flag value`,
// `--flag=value`, boolean `--flag` (also `--flag=true|false|1|0`), list flags repeated or comma-separated. A
// command's flags are one `const` table (FlagSpecs); parseFlags returns them typed from it (Flags<S>): a number
// flag is a number, a flag with choices is their union, a flag that is neither required nor defaulted may be
// undefined. Unknown flags, values of the wrong type and values outside the choices are a UsageError naming the
// flag (with the nearest flag as a hint).

import { parseArgs } from "node:util";
import type { ParseArgsConfig } from "node:util";

export type FlagKind = "string" | "number" | "int" | "boolean" | "list";

export interface FlagSpec {
  readonly kind: FlagKind;
  readonly help: string;
  readonly default?: string | number | boolean;
  readonly required?: boolean;
  /** The values a string flag (or each item of a list flag) accepts, typed as their union; others are refused naming the flag. */
  readonly choices?: readonly string[];
}

export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

export class UsageError extends Error {
  override name = "UsageError";
}

/** The value type of one flag. */
export type FlagValue<S extends FlagSpec> = S["kind"] extends "number" | "int"
  ? number
  : S["kind"] extends "boolean"
    ? boolean
    : S extends { readonly choices: readonly (infer C)[] }
      ? S["kind"] extends "list" ? C[] : C
      : S["kind"] extends "list"
        ? string[]
        : string;

/** The parsed flags of a spec table: booleans are always set (false unless given), so are required and defaulted flags. */
export type Flags<S extends FlagSpecs> = {
  readonly [K in keyof S]: AlwaysSet<S[K]> extends true ? FlagValue<S[K]> : FlagValue<S[K]> | undefined;
};

type AlwaysSet<S extends FlagSpec> = S["kind"] extends "boolean"
  ? true
  : S extends { readonly required: true } | { readonly default: string | number | boolean }
    ? true
    : false;

const BOOLEAN_VALUES: Readonly<Record<string, boolean>> = { true: true, "1": true, false: false, "0": false };

/** "a, b or c" */
function alternatives(xs: readonly string[]): string {
  return xs.length < 2 ? xs.join("") : `${xs.slice(0, -1).join(", ")} or ${xs[xs.length - 1]}`;
}

function unknownFlag(raw: string, specs: FlagSpecs): UsageError {
  const name = raw.replace(/^--?/, "");
  const near = closest(name, Object.keys(specs));
  return new UsageError(`unknown flag ${raw}${near !== undefined ? ` (did you mean --${near}?)` : ""}`);
}

/**
 * Node's parser refuses a value that starts with '-' unless it is written `--flag=value`, and has no `=false` for a
 * boolean. This pass (one walk over argv) lets a value-taking flag take the next word when it is not itself a flag (so `--lr -1` reaches
 * the range check, as `--ban-layers -1` does), and takes `--switch=true|false|1|0` out as explicit booleans.
 */
function normalize(argv: readonly string[], specs: FlagSpecs): { args: string[]; explicit: Map<string, boolean> } {
  const args: string[] = [], explicit = new Map<string, boolean>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf("=");
    const spec = arg.startsWith("--") ? specs[arg.slice(2, eq >= 0 ? eq : undefined)] : undefined;
    if (spec?.kind === "boolean" && eq >= 0) {
      const name = arg.slice(2, eq), raw = arg.slice(eq + 1), v = BOOLEAN_VALUES[raw];
      if (v === undefined) throw new UsageError(`--${name} is a switch: give it alone or as --${name}=true|false, got '${raw}'`);
      explicit.set(name, v);
    } else if (spec?.kind === "boolean") {
      explicit.delete(arg.slice(2)); // the last of `--switch=false --switch` wins, as for every other flag
      args.push(arg);
    } else if (spec !== undefined && eq < 0 && i + 1 < argv.length && /^-(?!-)./.test(argv[i + 1]!)) {
      args.push(`${arg}=${argv[++i]!}`);
    } else args.push(arg);
  }
  return { args, explicit };
}

/** Why Node's strict parse refused `args`: the first unknown flag, stray argument or flag without its value. */
function diagnose(args: string[], specs: FlagSpecs, options: ParseArgsConfig["options"], e: Error): UsageError {
  const { tokens } = parseArgs({ options, args, strict: false, allowPositionals: true, tokens: true });
  for (const t of tokens) {
    if (t.kind === "positional") return new UsageError(`unexpected argument '${t.value}'`);
    if (t.kind !== "option") continue;
    const spec = specs[t.name];
    if (spec === undefined) return unknownFlag(t.rawName, specs);
    if (spec.kind !== "boolean" && (t.value === undefined || (!t.inlineValue && t.value.startsWith("-"))))
      return new UsageError(`--${t.name} needs a value${t.value !== undefined ? ` (got the flag '${t.value}'; write --${t.name}=${t.value} if that is the value)` : ""}`);
  }
  return new UsageError(e.message);
}

/** Parses argv against the spec table. Throws UsageError naming the offending flag. */
export function parseFlags<const S extends FlagSpecs>(argv: readonly string[], specs: S): Flags<S> {
  const options: ParseArgsConfig["options"] = Object.fromEntries(
    Object.entries(specs).map(([name, s]) => [name, s.kind === "boolean" ? { type: "boolean" } : { type: "string", multiple: s.kind === "list" }]),
  );
  const { args, explicit } = normalize(argv, specs);
  let values: Record<string, string | boolean | Array<string | boolean> | undefined>;
  try {
    values = parseArgs({ options, args, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw diagnose(args, specs, options, e as Error);
  }
  const out: Record<string, string | number | boolean | string[] | undefined> = {};
  for (const [name, spec] of Object.entries(specs)) {
    const v = values[name];
    if (spec.kind === "boolean") out[name] = explicit.get(name) ?? (v === true ? true : ((spec.default as boolean | undefined) ?? false));
    else if (v === undefined) out[name] = spec.default;
    else if (spec.kind === "list") {
      const items = (v as string[]).flatMap((s) => s.split(",")).filter((s) => s.length > 0);
      const bad = spec.choices !== undefined ? items.find((x) => !spec.choices!.includes(x)) : undefined;
      if (bad !== undefined) throw new UsageError(`--${name}: unknown value '${bad}' (known: ${spec.choices!.join(",")})`);
      out[name] = items;
    } else if (spec.kind === "number" || spec.kind === "int") {
      const n = Number(v);
      if ((v as string).trim() === "" || !Number.isFinite(n) || (spec.kind === "int" && !Number.isInteger(n)))
        throw new UsageError(`--${name} expects ${spec.kind === "int" ? "an integer" : "a number"}, got '${String(v)}'`);
      out[name] = n;
    } else {
      if (spec.choices !== undefined && !spec.choices.includes(v as string))
        throw new UsageError(`--${name} must be ${alternatives(spec.choices)}, got '${String(v)}'`);
      out[name] = v as string;
    }
    if (spec.required && out[name] === undefined) throw new UsageError(`--${name} is required`);
  }
  return out as Flags<S>;
}

/** `o` without its undefined entries, typed so (exactOptionalPropertyTypes) it fits an options type whose fields are optional. */
export function withoutUndefined<T extends object>(o: T): WithoutUndefined<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as WithoutUndefined<T>;
}

export type WithoutUndefined<T> = { [K in keyof T as undefined extends T[K] ? never : K]: T[K] } & {
  [K in keyof T as undefined extends T[K] ? K : never]?: Exclude<T[K], undefined>;
};

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
