// The atomic writes every package uses: a failure in the middle leaves the old file or directory as it was
// and no temporary behind; the error names the target; a directory is replaced whole; a file written over
// many calls appears only when committed.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openFileAtomic, tempNameFor, writeDirAtomic, writeFileAtomic, writeFileAtomicAsync } from "./files-node.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "lrc-files-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const listing = (d: string) => fs.readdirSync(d).sort();

describe("writeFileAtomic", () => {
  it("writes text, bytes or a streamed temporary file; a failure keeps the old file and leaves no temporary", async () => {
    const d = fs.mkdtempSync(path.join(root, "f-"));
    const f = path.join(d, "a.json");
    writeFileAtomic(f, "one");
    writeFileAtomic(f, new Uint8Array([116, 119, 111]), { fsync: true });
    expect(fs.readFileSync(f, "utf8")).toBe("two");
    expect(() => writeFileAtomic(f, (tmp) => {
      fs.writeFileSync(tmp, "half");
      throw new RangeError("stop");
    })).toThrow(RangeError);
    await expect(writeFileAtomicAsync(f, async (tmp) => {
      fs.writeFileSync(tmp, "half");
      throw new RangeError("stop async");
    })).rejects.toThrow("stop async");
    expect(fs.readFileSync(f, "utf8")).toBe("two");
    expect(listing(d)).toEqual(["a.json"]);
    await writeFileAtomicAsync(f, async (tmp) => fs.writeFileSync(tmp, "three"));
    expect(fs.readFileSync(f, "utf8")).toBe("three");
  });

  it("a system error names the target (Node's own message names the temporary or nothing)", () => {
    const f = path.join(root, "missing-dir", "x.txt");
    expect(() => writeFileAtomic(f, "x")).toThrow(new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: cannot write: ENOENT`));
  });

  it("temporary names are dot names beside the target, unique per call", () => {
    const a = tempNameFor("/x/y/model.safetensors"), b = tempNameFor("/x/y/model.safetensors");
    expect(path.dirname(a)).toBe("/x/y");
    expect(path.basename(a)).toMatch(/^\.model\.safetensors\.tmp-\d+-[0-9a-f]{8}$/);
    expect(a).not.toBe(b);
  });
});

describe("openFileAtomic (a file written over many calls)", () => {
  it("nothing is at the target until commit; abort leaves nothing behind", () => {
    const d = fs.mkdtempSync(path.join(root, "o-"));
    const f = path.join(d, "train-000000.bin");
    const a = openFileAtomic(f);
    fs.writeSync(a.fd, new Uint8Array([1, 2]), 0, 2, 0);
    fs.writeSync(a.fd, new Uint8Array([3]), 0, 1, 2);
    expect(fs.existsSync(f)).toBe(false);
    a.commit();
    expect([...fs.readFileSync(f)]).toEqual([1, 2, 3]);
    const b = openFileAtomic(path.join(d, "val-000000.bin"));
    fs.writeSync(b.fd, new Uint8Array([9]));
    b.abort();
    expect(listing(d)).toEqual(["train-000000.bin"]);
  });
});

describe("writeDirAtomic", () => {
  it("creates the parent, replaces an existing directory whole, and on a failure keeps the old one", () => {
    const dir = path.join(root, "deep", "model");
    writeDirAtomic(dir, (tmp) => {
      fs.writeFileSync(path.join(tmp, "a"), "1");
      fs.writeFileSync(path.join(tmp, "old-only"), "x");
    });
    writeDirAtomic(dir, (tmp) => fs.writeFileSync(path.join(tmp, "a"), "2"));
    expect(listing(dir)).toEqual(["a"]);
    expect(fs.readFileSync(path.join(dir, "a"), "utf8")).toBe("2");
    expect(() => writeDirAtomic(dir, (tmp) => {
      fs.writeFileSync(path.join(tmp, "a"), "3");
      throw new Error("fill failed");
    })).toThrow("fill failed");
    expect(fs.readFileSync(path.join(dir, "a"), "utf8")).toBe("2");
    expect(listing(path.dirname(dir))).toEqual(["model"]);
  });
});
