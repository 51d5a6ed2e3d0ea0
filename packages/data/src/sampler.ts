// Seeded randomness for the data pipeline, self-contained so the order of batches is a pure function of
// (seed, epoch) on every platform: splitmix32 as the generator, a seeded Fisher-Yates permutation for the
// window order, and a per-document hash for the train/val split.
// References: splitmix (Steele, Lea, Flood 2014), 32-bit variant as in the "mix32" finalizer of MurmurHash3.

/** Mixes a 32-bit integer into a well-distributed 32-bit integer (MurmurHash3 fmix32 on a Weyl step). */
export function mix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** A splitmix32 generator: `next()` returns an unsigned 32-bit integer. */
export class SplitMix32 {
  private state: number;
  constructor(seed: number) {
    this.state = seed | 0;
  }
  next(): number {
    this.state = (this.state + 0x9e3779b9) | 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }
  /** Uniform integer in [0, n) for n <= 2^32, without modulo bias (rejection sampling). */
  below(n: number): number {
    if (n <= 1) return 0;
    const limit = 0x100000000 - (0x100000000 % n);
    for (;;) {
      const x = this.next();
      if (x < limit) return x % n;
    }
  }
}

/** Combines a seed and a stream index into one generator seed. */
export function deriveSeed(seed: number, stream: number): number {
  return mix32((mix32(seed >>> 0) ^ Math.imul(stream >>> 0, 0x27d4eb2f)) >>> 0);
}

/** The window order of one epoch: a seeded Fisher-Yates shuffle of 0..n-1. Pure in (n, seed, epoch). */
export function epochPermutation(n: number, seed: number, epoch: number): Uint32Array {
  const perm = new Uint32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const rng = new SplitMix32(deriveSeed(seed, epoch));
  for (let i = n - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    const t = perm[i]!;
    perm[i] = perm[j]!;
    perm[j] = t;
  }
  return perm;
}

/** A uniform number in [0, 1) for document `index` under `seed`: the seeded train/val choice. */
export function documentUniform(seed: number, index: number): number {
  const h = deriveSeed(seed ^ 0x5bd1e995, index >>> 0);
  const hi = Math.floor(index / 0x100000000);
  return (hi === 0 ? h : mix32(h ^ hi)) / 0x100000000;
}
