// Tests for the node:fs safetensors helpers: atomic writes, sync/async reads, and errors naming the path.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import fsModule from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { SafetensorsError, parseSafetensors, serializeSafetensors } from "./safetensors.js";
import { readSafetensorsFile, readSafetensorsFileSync, writeSafetensorsFile, writeSafetensorsFileSync } from "./safetensors-node.js";
import { makeDirectory } from "./files-node.js";

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-safetensors-"));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const tensors = {
  "model.embed_tokens.weight": { shape: [3, 2], data: new Float32Array([1, 2, 3, 4, 5, 6.5]) },
  "model.norm.weight": { shape: [2], data: new Float32Array([1, -1]) },
};

describe("safetensors files", () => {
  it("writes exactly the serialized bytes and reads them back (async and sync)", async () => {
    const file = path.join(dir, "a.safetensors");
    await writeSafetensorsFile(file, tensors, { format: "pt" });
    expect(new Uint8Array(fs.readFileSync(file))).toEqual(serializeSafetensors(tensors, { format: "pt" }));
    const f = await readSafetensorsFile(file);
    expect(f.source).toBe(file);
    expect(f.metadata).toEqual({ format: "pt" });
    expect(Array.from(f.readFloat32("model.embed_tokens.weight"))).toEqual([1, 2, 3, 4, 5, 6.5]);

    const file2 = path.join(dir, "b.safetensors");
    writeSafetensorsFileSync(file2, tensors, undefined, { dtype: "BF16" });
    const g = readSafetensorsFileSync(file2);
    expect(g.info("model.norm.weight").dtype).toBe("BF16");
    expect(Array.from(g.readFloat32("model.norm.weight"))).toEqual([1, -1]);
  });

  it("replaces an existing file atomically and leaves no temporary files", async () => {
    const file = path.join(dir, "c.safetensors");
    fs.writeFileSync(file, "old contents");
    await writeSafetensorsFile(file, tensors);
    writeSafetensorsFileSync(file, { x: { shape: [1], data: new Float32Array([7]) } });
    expect(readSafetensorsFileSync(file).names()).toEqual(["x"]);
    expect(fs.readdirSync(dir).filter((n) => n.endsWith(".tmp"))).toEqual([]);
  });

  it("keeps the old file and no temp file when serialization fails", async () => {
    const file = path.join(dir, "d.safetensors");
    writeSafetensorsFileSync(file, tensors);
    const bad = { w: { shape: [4], data: new Float32Array(3) } };
    await expect(writeSafetensorsFile(file, bad)).rejects.toThrowError(SafetensorsError);
    expect(() => writeSafetensorsFileSync(file, bad)).toThrowError(SafetensorsError);
    expect(readSafetensorsFileSync(file).names()).toEqual(Object.keys(tensors));
    expect(fs.readdirSync(dir).filter((n) => n.endsWith(".tmp"))).toEqual([]);
  });

  it("names the path in I/O and format errors", async () => {
    const missing = path.join(dir, "missing.safetensors");
    await expect(readSafetensorsFile(missing)).rejects.toThrowError(new RegExp(`^${escape(missing)}: cannot open: ENOENT`));
    expect(() => readSafetensorsFileSync(missing)).toThrowError(new RegExp(`^${escape(missing)}: cannot open: ENOENT`));
    const nodir = path.join(dir, "no", "such", "dir", "x.safetensors");
    await expect(writeSafetensorsFile(nodir, tensors)).rejects.toThrowError(new RegExp(`^${escape(nodir)}: cannot write: ENOENT`));
    const trunc = path.join(dir, "trunc.safetensors");
    const full = serializeSafetensors(tensors);
    fs.writeFileSync(trunc, full.subarray(0, full.length - 4));
    await expect(readSafetensorsFile(trunc)).rejects.toThrowError(new RegExp(`^${escape(trunc)}: tensor "model.norm.weight": data_offsets \\[24, 32\\] run past the end of the data section \\(28 bytes\\)`));
  });

  it("reads a multi-megabyte file as views over one buffer", async () => {
    const n = 1 << 21; // 8 MiB of F32
    const big = new Float32Array(n);
    for (let i = 0; i < n; i++) big[i] = i * 0.5;
    const file = path.join(dir, "big.safetensors");
    await writeSafetensorsFile(file, { big: { shape: [n], data: big } });
    const f = await readSafetensorsFile(file);
    const view = f.bytes("big");
    expect(view.byteLength).toBe(4 * n);
    expect(view.buffer.byteLength).toBe(fs.statSync(file).size); // one buffer holds the whole file
    expect(f.readFloat32("big")[n - 1]).toBe((n - 1) * 0.5);
    expect(parseSafetensors(fs.readFileSync(file)).names()).toEqual(["big"]);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

describe("makeDirectory", () => {
  it("creates nested directories, accepts an existing one", () => {
    const d = path.join(dir, "a", "b", "c");
    makeDirectory(d);
    makeDirectory(d);
    expect(fs.statSync(d).isDirectory()).toBe(true);
  });

  it("names the path that is in the way or refuses, and never hangs", () => {
    const f = path.join(dir, "plain-file");
    fs.writeFileSync(f, "x");
    expect(() => makeDirectory(f)).toThrow(`${f}: exists and is not a directory`);
    expect(() => makeDirectory(path.join(f, "sub", "dir"))).toThrow(`${f}: not a directory, so ${path.join(f, "sub", "dir")} cannot be created in it`);
    // Node's recursive mkdir spins forever here; this fails at once, naming the directory.
    if (fs.existsSync("/proc/self")) expect(() => makeDirectory("/proc/lrc-test/out")).toThrow(/^\/proc\/lrc-test: cannot create directory: ENOENT/);
  });

  it("a directory the user may not write in is reported as such, naming it (not as ENOENT)", () => {
    const ro = path.join(dir, "read-only");
    fs.mkdirSync(ro);
    // Simulated (the tests may run as root, for whom permissions do not apply).
    const mkdir = fs.mkdirSync;
    vi.spyOn(fsModule, "mkdirSync").mockImplementation(((p: fs.PathLike, o?: fs.MakeDirectoryOptions) => {
      if (path.dirname(String(p)) === ro) throw Object.assign(new Error(`EACCES: permission denied, mkdir '${String(p)}'`), { code: "EACCES" });
      return mkdir(p, o);
    }) as typeof fs.mkdirSync);
    syncBuiltinESMExports();
    try {
      expect(() => makeDirectory(path.join(ro, "out", "sub"))).toThrow(`${path.join(ro, "out")}: cannot create directory: EACCES: permission denied`);
    } finally {
      vi.restoreAllMocks();
      syncBuiltinESMExports();
    }
  });
});
