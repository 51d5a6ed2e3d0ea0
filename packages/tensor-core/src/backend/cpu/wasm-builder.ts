/**
 * A tiny WebAssembly assembler for the kernels generated at run time (no toolchain, no binary checked in): functions
 * are written as straight-line opcode emission in TypeScript with named locals and structured control flow, and
 * `buildModule` wraps them into a module that imports one memory (`env.mem`) and exports every function by name.
 * Only what the kernels use is here: i32 / f32 / f64 scalars, v128 (SIMD and relaxed SIMD), loads/stores, blocks
 * and loops.
 */

export const I32 = 0x7f;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;
export type ValType = typeof I32 | typeof F32 | typeof F64 | typeof V128;

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function section(id: number, bytes: number[]): number[] {
  return [id, ...uleb(bytes.length), ...bytes];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function name(s: string): number[] {
  return [...uleb(s.length), ...Array.from(s, (ch) => ch.charCodeAt(0))];
}

/** SIMD opcodes (after the 0xfd prefix) used by the kernels. */
export const S = {
  load: 0x00, load16x4U: 0x04, load32Splat: 0x09, store: 0x0b, const: 0x0c, shuffle: 0x0d,
  i32x4Splat: 0x11, f32x4Splat: 0x13, i32x4LtS: 0x39, i32x4GtS: 0x3b, f64x2Splat: 0x14, f32x4ExtractLane: 0x1f, f64x2ExtractLane: 0x21,
  f32x4Eq: 0x41, f32x4Lt: 0x43, f32x4Gt: 0x44, f32x4Le: 0x45, f32x4Ge: 0x46,
  and: 0x4e, andnot: 0x4f, or: 0x50, xor: 0x51, bitselect: 0x52,
  f64x2PromoteLow: 0x5f, f32x4Nearest: 0x6a, f32x4Floor: 0x68,
  i32x4Shl: 0xab, i32x4Add: 0xae, i32x4Sub: 0xb1,
  f32x4Abs: 0xe0, f32x4Neg: 0xe1, f32x4Sqrt: 0xe3, f32x4Add: 0xe4, f32x4Sub: 0xe5, f32x4Mul: 0xe6, f32x4Div: 0xe7,
  f32x4Min: 0xe8, f32x4Max: 0xe9, f32x4Pmin: 0xea, f32x4Pmax: 0xeb,
  f64x2Add: 0xf0, f64x2Sub: 0xf1, f64x2Mul: 0xf2,
  i32x4TruncSatF32x4S: 0xf8, f32x4ConvertI32x4S: 0xfa,
  f32x4RelaxedMadd: 0x105,
} as const;

/** Plain opcodes used by the kernels. */
export const Op = {
  block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b, br: 0x0c, brIf: 0x0d, return: 0x0f,
  drop: 0x1a, select: 0x1b,
  get: 0x20, set: 0x21, tee: 0x22, globalGet: 0x23,
  i32Load: 0x28, f32Load: 0x2a, f32Store: 0x38,
  i32Const: 0x41, f32Const: 0x43, f64Const: 0x44,
  i32Eqz: 0x45, i32Eq: 0x46, i32LtS: 0x48, i32LtU: 0x49, i32GtS: 0x4a, i32GeS: 0x4e, i32GeU: 0x4f,
  i32Add: 0x6a, i32Sub: 0x6b, i32Mul: 0x6c, i32And: 0x71, i32Shl: 0x74,
  f32Min: 0x96, f32Max: 0x97, f32Add: 0x92, f32Sub: 0x93, f32Mul: 0x94,
  f64Add: 0xa0, f64Mul: 0xa2, f32DemoteF64: 0xb6, f64PromoteF32: 0xbb,
} as const;

/** One function under construction: params are locals 0..n-1; `local()` adds more. */
export class Fn {
  readonly code: number[] = [];
  /** Positions in `code` of global-index placeholders for v128 constants (see `v128`). */
  readonly constRefs: { at: number; bytes: number[] }[] = [];
  private readonly extra: ValType[] = [];

  constructor(readonly exportName: string, readonly params: readonly ValType[], readonly results: readonly ValType[]) {}

  /** A new local of the given type; returns its index. */
  local(type: ValType): number {
    this.extra.push(type);
    return this.params.length + this.extra.length - 1;
  }

  op(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }

  get(i: number): this {
    return this.op(Op.get, ...uleb(i));
  }

  set(i: number): this {
    return this.op(Op.set, ...uleb(i));
  }

  tee(i: number): this {
    return this.op(Op.tee, ...uleb(i));
  }

  i32(v: number): this {
    return this.op(Op.i32Const, ...sleb(v));
  }

  f32(v: number): this {
    const b = new Uint8Array(new Float32Array([v]).buffer);
    return this.op(Op.f32Const, ...b);
  }

  f64(v: number): this {
    const b = new Uint8Array(new Float64Array([v]).buffer);
    return this.op(Op.f64Const, ...b);
  }

  simd(op: number, ...imm: number[]): this {
    return this.op(0xfd, ...uleb(op), ...imm);
  }

  /** v128.load at [top of stack + offset] (byte offset, 16-byte aligned hint). */
  load(offset = 0): this {
    return this.simd(S.load, 4, ...uleb(offset));
  }

  store(offset = 0): this {
    return this.simd(S.store, 4, ...uleb(offset));
  }

  /**
   * Pushes a v128 constant (16 bytes). It is emitted as `global.get` of an immutable module global holding the
   * value, not as `v128.const`: V8 (11.x) rematerialises every `v128.const` at each use inside a loop with three
   * instructions through a general-purpose register, which made the exp polynomial ~1.5x slower; a global is one
   * load. The index is a 5-byte padded LEB placeholder that `buildModule` fills in.
   */
  v128(bytes: readonly number[]): this {
    if (bytes.length !== 16) throw new RangeError(`wasm-builder: a v128 constant has 16 bytes, got ${bytes.length}`);
    this.op(Op.globalGet);
    this.constRefs.push({ at: this.code.length, bytes: [...bytes] });
    return this.op(0x80, 0x80, 0x80, 0x80, 0x00);
  }

  /** A v128 constant of four equal f32 lanes. */
  f32x4(v: number): this {
    return this.v128([...new Uint8Array(new Float32Array([v, v, v, v]).buffer)]);
  }

  /** A v128 constant of four equal i32 lanes. */
  i32x4(v: number): this {
    return this.v128([...new Uint8Array(new Int32Array([v, v, v, v]).buffer)]);
  }

  /** i8x16.shuffle of the two operands with lane bytes `lanes`. */
  shuffle(lanes: readonly number[]): this {
    return this.simd(S.shuffle, ...lanes);
  }

  /** local.get i; local.get j; ... : shorthand for pushing several locals. */
  gets(...ids: number[]): this {
    for (const i of ids) this.get(i);
    return this;
  }

  /** i += delta (i32 local). */
  inc(i: number, delta: number): this {
    return this.get(i).i32(delta).op(Op.i32Add).set(i);
  }

  /**
   * `for (; i < end; i += step) body()` over i32 locals (i must be initialised by the caller); `end` is a local.
   * Signed comparison.
   */
  forLoop(i: number, end: number, step: number, body: () => void): this {
    this.op(Op.block, 0x40, Op.loop, 0x40);
    this.get(i).get(end).op(Op.i32GeS, Op.brIf, 1);
    body();
    this.inc(i, step);
    this.op(Op.br, 0, Op.end, Op.end);
    return this;
  }

  /** The function's code section entry. */
  body(): number[] {
    const groups: number[][] = this.extra.map((t) => [1, t]);
    const b = [...vec(groups), ...this.code, Op.end];
    return [...uleb(b.length), ...b];
  }
}

/**
 * A module importing `env.mem` (min `pages`) and exporting every function under its name. Every distinct v128
 * constant of the functions becomes one immutable global, and the functions' placeholders get its index.
 */
export function buildModule(fns: readonly Fn[], pages = 1): Uint8Array {
  const types = fns.map((f) => [0x60, ...vec(f.params.map((p) => [p])), ...vec(f.results.map((r) => [r]))]);
  const globals = new Map<string, number>();
  for (const f of fns) {
    for (const ref of f.constRefs) {
      const key = ref.bytes.join(",");
      let index = globals.get(key);
      if (index === undefined) {
        index = globals.size;
        globals.set(key, index);
      }
      // padded 5-byte LEB128 of the index
      for (let b = 0; b < 5; b++) f.code[ref.at + b] = ((index >>> (7 * b)) & 0x7f) | (b < 4 ? 0x80 : 0);
    }
  }
  const globalEntries = [...globals.keys()].map((key) => [V128, 0x00, 0xfd, S.const, ...key.split(",").map(Number), Op.end]);
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(2, vec([[...name("env"), ...name("mem"), 0x02, 0x00, ...uleb(pages)]])),
    ...section(3, vec(fns.map((_, i) => uleb(i)))),
    ...(globalEntries.length > 0 ? section(6, vec(globalEntries)) : []),
    ...section(7, vec(fns.map((f, i) => [...name(f.exportName), 0x00, ...uleb(i)]))),
    ...section(10, vec(fns.map((f) => f.body()))),
  ];
  return new Uint8Array(bytes);
}
