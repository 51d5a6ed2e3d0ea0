// A fast-check arbitrary shared by the file-parser fuzz tests of every package. Import from
// "@lrc-ts/tensor-core/testing/fuzz"; it needs fast-check (an optional peer dependency of tensor-core), which is
// why it is not part of "@lrc-ts/tensor-core/testing".

import fc from "fast-check";

/**
 * Bytes a parser of `valid`'s format must either accept or refuse with its own named error: random bytes (at
 * most `maxLength`), or a copy of `valid` with one to four bytes overwritten, optionally cut short first.
 * `valid` itself is never modified.
 */
export function corruptedBytes(valid: Uint8Array, { maxLength = 200 }: { maxLength?: number } = {}): fc.Arbitrary<Uint8Array<ArrayBuffer>> {
  return fc.oneof(
    fc.uint8Array({ maxLength }),
    fc.record({ at: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), cut: fc.option(fc.nat()) }).map(({ at, cut }) => {
      const b = new Uint8Array(valid.subarray(0, cut === null ? valid.length : cut % (valid.length + 1)));
      for (const [i, x] of at) if (b.length > 0) b[i % b.length] = x;
      return b;
    }),
  );
}
