// Tests for the safetensors codec: byte-exact layout, half-precision conversions against independent
// oracles, fast-check round trips, and one specific error message per kind of corrupt header.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { corruptedBytes } from "@lrc-ts/tensor-core/testing/fuzz";
import {
  SafetensorsError,
  bf16BitsToFloat32,
  f16BitsToFloat32,
  float32BitsToBF16Bits,
  float32BitsToF16Bits,
  parseSafetensors,
  serializeSafetensors,
  type SafetensorsFloatDType,
  type SafetensorsTensorInput,
} from "./safetensors.js";

const enc = new TextEncoder();

/** A file from a literal header string (padded with spaces to 8 as the reference writer does) and data. */
function buildFile(header: string, data: Uint8Array = new Uint8Array(0), pad = true): Uint8Array {
  const json = enc.encode(header);
  const n = pad ? Math.ceil(json.length / 8) * 8 : json.length;
  const out = new Uint8Array(8 + n + data.length);
  new DataView(out.buffer).setUint32(0, n, true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + n);
  out.set(data, 8 + n);
  return out;
}

function f32Bits(x: number): number {
  return new Uint32Array(new Float32Array([x]).buffer)[0]!;
}
function fromBits(b: number): number {
  return new Float32Array(new Uint32Array([b]).buffer)[0]!;
}

/** Independent binary16 decoder written from the IEEE definition, in float64 arithmetic. */
function f16Reference(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m === 0 ? s * Infinity : NaN;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * Round-to-nearest-even oracle over an explicit table of the format's non-negative finite values:
 * binary search for the neighbours of |x| and pick the nearer, ties to the even bit pattern; past the
 * largest finite value the next power of two stands for infinity.
 */
function makeOracle(maxFiniteBits: number, infBits: number, decode: (b: number) => number, nextPow2: number) {
  const values: number[] = [];
  for (let b = 0; b <= maxFiniteBits; b++) values.push(decode(b));
  values.push(nextPow2);
  return (x: number): number => {
    const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
    const a = Math.abs(x);
    let lo = 0;
    let hi = values.length - 1;
    if (a >= values[hi]!) return sign | infBits;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (values[mid]! <= a) lo = mid;
      else hi = mid;
    }
    const dl = a - values[lo]!;
    const dh = values[hi]! - a;
    let pick = dl < dh ? lo : dh < dl ? hi : lo % 2 === 0 ? lo : hi;
    if (pick === values.length - 1) pick = infBits;
    return sign | pick;
  };
}

const f16Oracle = makeOracle(0x7bff, 0x7c00, f16Reference, 65536);
const bf16Oracle = makeOracle(0x7f7f, 0x7f80, (b) => fromBits(b << 16), 2 ** 128);

describe("half-precision conversions", () => {
  it("decodes every binary16 pattern exactly (subnormals, inf, nan included)", () => {
    for (let h = 0; h < 65536; h++) {
      const got = f16BitsToFloat32(h);
      const want = f16Reference(h);
      if (Number.isNaN(want)) expect(Number.isNaN(got)).toBe(true);
      else expect(Object.is(got, want)).toBe(true);
    }
  });

  it("re-encodes every binary16 and bfloat16 pattern to itself", () => {
    for (let h = 0; h < 65536; h++) {
      const f = f32Bits(f16BitsToFloat32(h));
      const b = f32Bits(bf16BitsToFloat32(h));
      const isNanF16 = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      const isNanBF16 = (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
      if (!isNanF16) expect(float32BitsToF16Bits(f)).toBe(h);
      else expect(Number.isNaN(f16BitsToFloat32(float32BitsToF16Bits(f)))).toBe(true);
      if (!isNanBF16) expect(float32BitsToBF16Bits(b)).toBe(h);
      else expect(Number.isNaN(bf16BitsToFloat32(float32BitsToBF16Bits(b)))).toBe(true);
    }
  });

  it("rounds float32 to binary16 and bfloat16 to nearest, ties to even (vs a table oracle)", () => {
    const anyF32 = fc.integer({ min: 0, max: 0xffffffff }).filter((b) => !Number.isNaN(fromBits(b)));
    // Values near the binary16 range, where every rounding case (subnormal, tie, overflow) happens.
    const nearF16 = fc.double({ min: -70000, max: 70000, noNaN: true }).map((x) => f32Bits(Math.fround(x)));
    const tiny = fc.double({ min: -1e-4, max: 1e-4, noNaN: true }).map((x) => f32Bits(Math.fround(x)));
    fc.assert(
      fc.property(fc.oneof(anyF32, nearF16, tiny), (bits) => {
        const x = fromBits(bits);
        expect(float32BitsToF16Bits(bits)).toBe(f16Oracle(x));
        expect(float32BitsToBF16Bits(bits)).toBe(bf16Oracle(x));
      }),
      { numRuns: 20000 },
    );
  });

  it("handles the exact tie and overflow boundaries", () => {
    expect(float32BitsToF16Bits(f32Bits(65504))).toBe(0x7bff);
    expect(float32BitsToF16Bits(f32Bits(65519.99609375))).toBe(0x7bff);
    expect(float32BitsToF16Bits(f32Bits(65520))).toBe(0x7c00); // halfway to 2^16 ties to even -> inf
    expect(float32BitsToF16Bits(f32Bits(2 ** -25))).toBe(0x0000); // halfway to the smallest subnormal -> 0
    expect(float32BitsToF16Bits(f32Bits(Math.fround(2 ** -25 * 1.0000001)))).toBe(0x0001);
    expect(float32BitsToF16Bits(f32Bits(3 * 2 ** -25))).toBe(0x0002); // 1.5 ulp ties to even (2)
    expect(float32BitsToF16Bits(f32Bits(1 + 2 ** -11))).toBe(0x3c00); // tie, even stays
    expect(float32BitsToF16Bits(f32Bits(1 + 3 * 2 ** -11))).toBe(0x3c02); // tie, odd rounds up
    expect(float32BitsToF16Bits(f32Bits(-0))).toBe(0x8000);
    expect(float32BitsToBF16Bits(f32Bits(1 + 2 ** -8))).toBe(0x3f80);
    expect(float32BitsToBF16Bits(f32Bits(1 + 3 * 2 ** -8))).toBe(0x3f82);
    expect(float32BitsToBF16Bits(0x7f7fffff)).toBe(0x7f80); // float32 max rounds to inf in bf16
    expect(float32BitsToBF16Bits(0x00000001)).toBe(0x0000); // smallest f32 subnormal -> +0
    expect(float32BitsToBF16Bits(0x00008000 | 0x10000)).toBe(0x0002); // subnormal tie, odd rounds up
  });
});

describe("serializeSafetensors layout", () => {
  it("writes the reference crate's bytes for one F32 tensor", () => {
    const out = serializeSafetensors({ "attn.0": { shape: [1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) } });
    const header = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
    expect(header.length).toBe(64); // already a multiple of 8: no padding
    expect(Array.from(out.subarray(0, 8))).toEqual([64, 0, 0, 0, 0, 0, 0, 0]);
    expect(new TextDecoder().decode(out.subarray(8, 72))).toBe(header);
    expect(Array.from(out.subarray(72))).toEqual(Array.from(new Uint8Array(new Float32Array([0, 1, 2, 3, 4, 5]).buffer)));
  });

  it("pads the header with spaces to a multiple of 8 bytes", () => {
    const out = serializeSafetensors({ attn0: { shape: [1, 1, 2, 3], data: new Float32Array(6) } });
    const n = new DataView(out.buffer).getUint32(0, true);
    expect(n).toBe(72);
    const text = new TextDecoder().decode(out.subarray(8, 8 + n));
    expect(text).toBe('{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       ');
    expect(Array.from(serializeSafetensors({}))).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    const withMeta = serializeSafetensors({}, { framework: "pt" });
    expect(new TextDecoder().decode(withMeta.subarray(8))).toBe('{"__metadata__":{"framework":"pt"}}     ');
  });

  it("keeps insertion order, even for integer-like names", () => {
    const t = (x: number): SafetensorsTensorInput => ({ shape: [1], data: new Float32Array([x]) });
    const file = parseSafetensors(serializeSafetensors([["10", t(10)], ["2", t(2)], ["a", t(1)]]));
    expect(file.names()).toEqual(["10", "2", "a"]);
    expect(file.info("2")).toEqual({ dtype: "F32", shape: [1], begin: 4, end: 8 });
  });

  it("rejects inconsistent input", () => {
    const bad = (f: () => unknown, msg: string) => expect(f).toThrowError(new SafetensorsError(msg));
    bad(() => serializeSafetensors({ w: { shape: [2, 2], data: new Float32Array(3) } }), 'serializeSafetensors: tensor "w": shape [2, 2] has 4 elements but data has 3');
    bad(
      () => serializeSafetensors([["w", { shape: [1], data: new Float32Array(1) }], ["w", { shape: [1], data: new Float32Array(1) }]]),
      'serializeSafetensors: tensor "w" appears twice',
    );
    bad(() => serializeSafetensors({ __metadata__: { shape: [0], data: new Float32Array(0) } }), "serializeSafetensors: __metadata__ is reserved and cannot be a tensor name");
    bad(() => serializeSafetensors({ w: { shape: [-1], data: new Float32Array(0) } }), 'serializeSafetensors: tensor "w": shape must be an array of non-negative integers, got [-1]');
  });
});

describe("lazy tensors (produce(), for streaming writes)", () => {
  it("give the same bytes as eager data, produced once each, in file order", () => {
    const a = new Float32Array([1.5, -2, 3.25]), b = new Float32Array([0.1, 0.2]);
    const calls: string[] = [];
    const lazy = serializeSafetensors(
      [
        ["a", { shape: [3], produce: () => (calls.push("a"), a) }],
        ["b", { shape: [1, 2], produce: () => (calls.push("b"), b), dtype: "BF16" }],
      ],
      { format: "pt" },
      { dtype: "F16" },
    );
    const eager = serializeSafetensors([["a", { shape: [3], data: a }], ["b", { shape: [1, 2], data: b, dtype: "BF16" }]], { format: "pt" }, { dtype: "F16" });
    expect(calls).toEqual(["a", "b"]);
    expect(Array.from(lazy)).toEqual(Array.from(eager));
  });

  it("reject a produce() of the wrong length, naming the tensor", () => {
    expect(() => serializeSafetensors({ w: { shape: [2, 2], produce: () => new Float32Array(3) } })).toThrowError(
      new SafetensorsError('serializeSafetensors: tensor "w": produce() must return a Float32Array of 4 values for shape [2, 2]'),
    );
  });
});

describe("parseSafetensors reads a file laid out like Python's safetensors.torch.save_file", () => {
  // save_file({...}, metadata={"format": "pt"}) sorts tensors by dtype alignment (descending) and then
  // by name, writes compact JSON with __metadata__ first, and pads with spaces. Rebuilt here by hand.
  const ids = [1n, -2n, 2147483647n, -2147483648n, 0n, 7n];
  const w = [1.5, -0.25, 3.4028234663852886e38, 1e-45];
  const bf = [0x3fc0, 0xc000, 0x7f80, 0x0001, 0x7fc0];
  const h = [0x3c00, 0x0001, 0xfc00, 0x8000, 0x7e00, 0x03ff];
  const data = new Uint8Array(48 + 16 + 10 + 12);
  const dv = new DataView(data.buffer);
  ids.forEach((v, i) => dv.setBigInt64(8 * i, v, true));
  w.forEach((v, i) => dv.setFloat32(48 + 4 * i, v, true));
  bf.forEach((v, i) => dv.setUint16(64 + 2 * i, v, true));
  h.forEach((v, i) => dv.setUint16(74 + 2 * i, v, true));
  const header =
    '{"__metadata__":{"format":"pt"},"ids":{"dtype":"I64","shape":[2,3],"data_offsets":[0,48]},' +
    '"w":{"dtype":"F32","shape":[2,2],"data_offsets":[48,64]},' +
    '"b":{"dtype":"BF16","shape":[5],"data_offsets":[64,74]},' +
    '"h":{"dtype":"F16","shape":[6],"data_offsets":[74,86]}}';
  const bytes = buildFile(header, data);

  it("exposes metadata, names in offset order, and infos", () => {
    const f = parseSafetensors(bytes, "model.safetensors");
    expect(f.metadata).toEqual({ format: "pt" });
    expect(f.names()).toEqual(["ids", "w", "b", "h"]);
    expect(f.has("w")).toBe(true);
    expect(f.has("x")).toBe(false);
    expect(f.info("h")).toEqual({ dtype: "F16", shape: [6], begin: 74, end: 86 });
    expect(f.headerLength % 8).toBe(0);
    expect(f.dataOffset).toBe(8 + f.headerLength);
  });

  it("decodes each dtype exactly", () => {
    const f = parseSafetensors(bytes, "model.safetensors");
    expect(Array.from(f.readInt32("ids"))).toEqual(ids.map(Number));
    expect(Array.from(f.readFloat32("w"))).toEqual(w.map(Math.fround));
    const b = f.readFloat32("b");
    expect(Array.from(b.subarray(0, 4))).toEqual([1.5, -2, Infinity, fromBits(0x00010000)]);
    expect(Number.isNaN(b[4])).toBe(true);
    const hv = f.readFloat32("h");
    expect(Array.from(hv.subarray(0, 4))).toEqual([1, 2 ** -24, -Infinity, -0]);
    expect(Object.is(hv[3], -0)).toBe(true);
    expect(Number.isNaN(hv[4])).toBe(true);
    expect(hv[5]).toBe(1023 * 2 ** -24);
  });

  it("reads from an unaligned view of a larger buffer", () => {
    const big = new Uint8Array(bytes.length + 3);
    big.set(bytes, 3);
    const f = parseSafetensors(big.subarray(3), "x");
    expect(Array.from(f.readFloat32("w"))).toEqual(w.map(Math.fround));
    expect(f.readFloat32("h")[0]).toBe(1);
    expect(f.bytes("b").length).toBe(10);
  });

  it("converts F64 and small integer types", () => {
    const d = new Uint8Array(16 + 3 + 4 + 2);
    const v = new DataView(d.buffer);
    v.setFloat64(0, 0.1, true);
    v.setFloat64(8, -1e300, true);
    d.set([255, 0, 1], 16);
    v.setInt16(19, -300, true);
    v.setInt16(21, 12, true);
    d.set([0, 1], 23);
    const hdr =
      '{"d":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},"u":{"dtype":"U8","shape":[3],"data_offsets":[16,19]},' +
      '"s":{"dtype":"I16","shape":[2],"data_offsets":[19,23]},"m":{"dtype":"BOOL","shape":[2],"data_offsets":[23,25]}}';
    const f = parseSafetensors(buildFile(hdr, d));
    expect(Array.from(f.readFloat32("d"))).toEqual([Math.fround(0.1), -Infinity]);
    expect(Array.from(f.readInt32("u"))).toEqual([255, 0, 1]);
    expect(Array.from(f.readInt32("s"))).toEqual([-300, 12]);
    expect(Array.from(f.readInt32("m"))).toEqual([0, 1]);
  });

  it("names the file and tensor when a read is impossible", () => {
    const f = parseSafetensors(bytes, "model.safetensors");
    expect(() => f.readFloat32("ids")).toThrowError(
      new SafetensorsError('model.safetensors: tensor "ids": dtype I64 is not a float type; readFloat32 reads F32, F16, BF16 and F64 (use readInt32)'),
    );
    expect(() => f.readInt32("w")).toThrowError(/model\.safetensors: tensor "w": dtype F32 is not an integer type/);
    expect(() => f.info("nope")).toThrowError(new SafetensorsError('model.safetensors: tensor "nope": no such tensor (has: ids, w, b, h)'));
    const big = new Uint8Array(8);
    new DataView(big.buffer).setBigInt64(0, 2n ** 40n, true);
    const f2 = parseSafetensors(buildFile('{"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}', big), "ids.safetensors");
    expect(() => f2.readInt32("i")).toThrowError(new SafetensorsError('ids.safetensors: tensor "i": I64 value 1099511627776 at flat index 0 does not fit in int32'));
  });
});

describe("round trips (fast-check)", () => {
  const shapeArb = fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 0, maxLength: 3 });
  const tensorArb = shapeArb.chain((shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return fc
      .array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: n, maxLength: n })
      .map((bits) => ({ shape, data: new Float32Array(new Uint32Array(bits).buffer) }));
  });
  const filesArb = fc.uniqueArray(fc.tuple(fc.string({ minLength: 1, maxLength: 8 }), tensorArb), {
    selector: ([name]) => name,
    maxLength: 6,
  }).filter((xs) => xs.every(([name]) => name !== "__metadata__"));
  const metaArb = fc.option(fc.dictionary(fc.string({ maxLength: 6 }).filter((k) => k !== "__proto__"), fc.string({ maxLength: 10 }), { maxKeys: 3 }), { nil: undefined });

  const bitsOf = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

  it("F32 is bit-exact (NaN payloads included), names keep offset order, metadata survives", () => {
    fc.assert(
      fc.property(filesArb, metaArb, (tensors, meta) => {
        const f = parseSafetensors(serializeSafetensors(tensors, meta));
        // Offset order is insertion order; zero-sized tensors share an offset, so only their set is fixed.
        const nonEmpty = tensors.filter(([, t]) => t.data.length > 0).map(([n]) => n);
        expect(f.names().filter((n) => f.bytes(n).length > 0)).toEqual(nonEmpty);
        expect(f.names().slice().sort()).toEqual(tensors.map(([n]) => n).sort());
        expect({ ...f.metadata }).toEqual(meta ?? {});
        for (const [name, t] of tensors) {
          expect(f.info(name).shape).toEqual(t.shape);
          expect(bitsOf(f.readFloat32(name))).toEqual(bitsOf(t.data));
        }
      }),
      { numRuns: 200 },
    );
  });

  for (const dtype of ["BF16", "F16"] as const satisfies readonly SafetensorsFloatDType[]) {
    it(`${dtype} round-trips to the nearest-even ${dtype} value`, () => {
      const oracle = dtype === "BF16" ? bf16Oracle : f16Oracle;
      const decode = dtype === "BF16" ? bf16BitsToFloat32 : f16BitsToFloat32;
      fc.assert(
        fc.property(filesArb, (tensors) => {
          const f = parseSafetensors(serializeSafetensors(tensors, undefined, { dtype }));
          for (const [name, t] of tensors) {
            expect(f.info(name).dtype).toBe(dtype);
            const got = f.readFloat32(name);
            t.data.forEach((x, i) => {
              if (Number.isNaN(x)) expect(Number.isNaN(got[i])).toBe(true);
              else expect(Object.is(got[i], decode(oracle(x)))).toBe(true);
            });
          }
        }),
        { numRuns: 100 },
      );
    });
  }

  it("mixes per-tensor dtypes and Int32 data", () => {
    const ids = new Int32Array([3, -1, 2147483647]);
    const x = new Float32Array([1.00390625, -3.3e-8]);
    const f = parseSafetensors(
      serializeSafetensors({ ids: { shape: [3], data: ids }, x: { shape: [2], data: x, dtype: "BF16" }, y: { shape: [2], data: x } }, undefined, { dtype: "F16" }),
    );
    expect(f.info("ids").dtype).toBe("I32");
    expect(Array.from(f.readInt32("ids"))).toEqual(Array.from(ids));
    expect(f.info("x").dtype).toBe("BF16");
    expect(f.info("y").dtype).toBe("F16");
    expect(Array.from(f.readFloat32("x"))).toEqual([1, bf16BitsToFloat32(float32BitsToBF16Bits(f32Bits(x[1]!)))]);
    expect(Array.from(f.readFloat32("y"))).toEqual([1.00390625, -(2 ** -24)]);
  });
});

describe("rejects corrupt files with a specific message", () => {
  const src = "ckpt/model.safetensors";
  const expectError = (bytes: Uint8Array, msg: string) => {
    expect(() => parseSafetensors(bytes, src)).toThrowError(new SafetensorsError(`${src}: ${msg}`));
  };
  const f32 = (n: number) => new Uint8Array(4 * n);
  const one = (entry: string, data: Uint8Array) => buildFile(`{"w":${entry}}`, data);

  it("truncated before the length prefix", () => {
    expectError(new Uint8Array(5), "file is 5 bytes, shorter than the 8-byte header length prefix");
    expect(() => parseSafetensors(new Uint8Array(0))).toThrowError(/^<safetensors bytes>: file is 0 bytes/);
  });

  it("header length larger than the file, or absurd", () => {
    const good = serializeSafetensors({ w: { shape: [2], data: new Float32Array(2) } });
    expectError(good.subarray(0, 40), "header length 56 is larger than the file (40 bytes, 32 after the prefix)");
    const huge = good.slice();
    new DataView(huge.buffer).setUint32(4, 1, true);
    expectError(huge, "header length 4294967352 is absurd (limit 100000000 bytes); not a safetensors file?");
    const big = good.slice();
    new DataView(big.buffer).setUint32(0, 100_000_001, true);
    expectError(big, "header length 100000001 is absurd (limit 100000000 bytes); not a safetensors file?");
  });

  it("truncated data section", () => {
    const good = serializeSafetensors({ w: { shape: [2], data: new Float32Array(2) } });
    expectError(good.subarray(0, good.length - 1), 'tensor "w": data_offsets [0, 8] run past the end of the data section (7 bytes)');
  });

  it("header not UTF-8, not JSON, not an object", () => {
    const bytes = buildFile("{}");
    bytes[9] = 0xff;
    expectError(bytes, "header is not valid UTF-8");
    expect(() => parseSafetensors(buildFile('{"w":'), src)).toThrowError(/^ckpt\/model\.safetensors: header is not valid JSON \(/);
    expectError(buildFile("[1,2]"), "header JSON is not an object (got an array)");
    expectError(buildFile("null"), "header JSON is not an object (got null)");
  });

  it("entries without dtype, shape or data_offsets", () => {
    expectError(one('{"shape":[1],"data_offsets":[0,4]}', f32(1)), 'tensor "w": entry has no dtype');
    expectError(one('{"dtype":"F32","data_offsets":[0,4]}', f32(1)), 'tensor "w": entry has no shape');
    expectError(one('{"dtype":"F32","shape":[1]}', f32(1)), 'tensor "w": entry has no data_offsets');
    expectError(one("3", f32(1)), 'tensor "w": entry is not an object (got 3)');
  });

  it("unknown dtype", () => {
    expectError(
      one('{"dtype":"Q4_K","shape":[1],"data_offsets":[0,4]}', f32(1)),
      'tensor "w": unknown dtype "Q4_K" (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)',
    );
  });

  it("negative or non-integer shape, malformed offsets", () => {
    expectError(one('{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}', f32(1)), 'tensor "w": shape must be an array of non-negative integers, got [-1]');
    expectError(one('{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}', f32(1)), 'tensor "w": shape must be an array of non-negative integers, got [1.5]');
    expectError(one('{"dtype":"F32","shape":[1],"data_offsets":[0]}', f32(1)), 'tensor "w": data_offsets must be [begin, end] with non-negative integers, got [0]');
  });

  it("offsets not ordered or past the end", () => {
    expectError(one('{"dtype":"F32","shape":[1],"data_offsets":[4,0]}', f32(1)), 'tensor "w": data_offsets [4, 0] are not ordered (end < begin)');
    expectError(one('{"dtype":"F32","shape":[2],"data_offsets":[0,8]}', f32(1)), 'tensor "w": data_offsets [0, 8] run past the end of the data section (4 bytes)');
  });

  it("wrong byte length for the shape and dtype", () => {
    expectError(
      one('{"dtype":"BF16","shape":[2,2],"data_offsets":[0,16]}', f32(4)),
      'tensor "w": byte length 16 (data_offsets [0, 16]) != 4 elements x 2 bytes (BF16, shape [2, 2]) = 8',
    );
  });

  it("overlapping ranges", () => {
    const h = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}';
    expectError(buildFile(h, f32(3)), 'tensor "b": data_offsets [4, 12] overlap tensor "a" [0, 8]');
  });

  it("gaps and trailing bytes (the reference crate requires exact coverage)", () => {
    const gap = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}';
    expectError(buildFile(gap, f32(3)), 'data section bytes [4, 8) belong to no tensor (gap before tensor "b")');
    expectError(one('{"dtype":"F32","shape":[1],"data_offsets":[0,4]}', f32(2)), "data section is 8 bytes but the tensors cover only 4 (trailing bytes after the last tensor)");
    // Zero-sized tensors share an offset without overlapping anything.
    const empty = '{"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
    expect(parseSafetensors(buildFile(empty, f32(1))).names()).toEqual(["a", "e"]);
  });

  it("__metadata__ values that are not strings", () => {
    expectError(buildFile('{"__metadata__":{"step":3}}'), "__metadata__.step is not a string (got 3)");
    expectError(buildFile('{"__metadata__":["x"]}'), '__metadata__ is not an object of strings (got ["x"])');
  });
});

describe("random and mutated bytes (fast-check)", () => {
  it("parseSafetensors and every read either succeed or throw a SafetensorsError naming the file", () => {
    const src = "ckpt/fuzz.safetensors";
    const valid = serializeSafetensors(
      [["a", { shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) }], ["b", { shape: [4], data: new Float32Array(4), dtype: "BF16" }], ["c", { shape: [2], data: new Int32Array([7, 8]) }]],
      { format: "pt" },
    );
    fc.assert(
      fc.property(corruptedBytes(valid), (b) => {
        try {
          const f = parseSafetensors(b, src);
          for (const n of f.names()) {
            const { dtype } = f.info(n);
            if (dtype === "F32" || dtype === "F16" || dtype === "BF16" || dtype === "F64") f.readFloat32(n);
            else f.readInt32(n);
          }
        } catch (e) {
          if (!(e instanceof SafetensorsError) || !e.message.startsWith(`${src}: `)) throw e;
        }
      }),
      { numRuns: 400 },
    );
  });
});
